interface Node<V> {
  readonly key: string;
  value: V;
  newer: Node<V> | undefined;
  older: Node<V> | undefined;
}

/**
 * A map of at most `max` entries that drops the least recently used one when a new key
 * would exceed the bound. Recency lives in a linked list beside the Map rather than in the
 * Map's insertion order: a delete-and-set per touch would leave V8 a hole per access, and
 * finding the oldest entry through `keys().next()` walks every hole before it.
 */
export class LruMap<V> {
  readonly #max: number;
  readonly #nodes = new Map<string, Node<V>>();
  #newest: Node<V> | undefined;
  #oldest: Node<V> | undefined;
  #evictions = 0;

  /** `max`: entries kept at most; at least 1. */
  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
  }

  get size(): number {
    return this.#nodes.size;
  }

  get max(): number {
    return this.#max;
  }

  /** Entries dropped for the bound since this map was made. */
  get evictions(): number {
    return this.#evictions;
  }

  /** The value under `key`, which becomes the most recently used. */
  get(key: string): V | undefined {
    const node = this.#nodes.get(key);
    if (node === undefined) return undefined;
    this.#touch(node);
    return node.value;
  }

  has(key: string): boolean {
    return this.#nodes.has(key);
  }

  /**
   * Keeps `value` under `key` as the most recently used; past the bound the least recently
   * used entry goes, and is returned.
   */
  set(key: string, value: V): { readonly key: string; readonly value: V } | undefined {
    const node = this.#nodes.get(key);
    if (node !== undefined) {
      node.value = value;
      this.#touch(node);
      return undefined;
    }
    const added: Node<V> = { key, value, newer: undefined, older: this.#newest };
    if (this.#newest) this.#newest.newer = added;
    this.#newest = added;
    this.#oldest ??= added;
    this.#nodes.set(key, added);
    if (this.#nodes.size <= this.#max) return undefined;
    const oldest = this.#oldest;
    if (oldest === undefined) return undefined;
    this.#unlink(oldest);
    this.#nodes.delete(oldest.key);
    this.#evictions++;
    return { key: oldest.key, value: oldest.value };
  }

  delete(key: string): boolean {
    const node = this.#nodes.get(key);
    if (node === undefined) return false;
    this.#unlink(node);
    return this.#nodes.delete(key);
  }

  /** The value under `key`, leaving its recency as it is. */
  peek(key: string): V | undefined {
    return this.#nodes.get(key)?.value;
  }

  /** Entries from the most to the least recently used. */
  *entries(): Iterable<readonly [string, V]> {
    for (let n = this.#newest; n !== undefined; n = n.older) yield [n.key, n.value];
  }

  /** Keys from the most to the least recently used. */
  *keys(): Iterable<string> {
    for (let n = this.#newest; n !== undefined; n = n.older) yield n.key;
  }

  #touch(node: Node<V>): void {
    if (node === this.#newest) return;
    this.#unlink(node);
    node.older = this.#newest;
    if (this.#newest) this.#newest.newer = node;
    this.#newest = node;
    this.#oldest ??= node;
  }

  #unlink(node: Node<V>): void {
    if (node.newer) node.newer.older = node.older;
    else this.#newest = node.older;
    if (node.older) node.older.newer = node.newer;
    else this.#oldest = node.newer;
    node.newer = undefined;
    node.older = undefined;
  }
}
