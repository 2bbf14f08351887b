/**
 * Lookups by key over immutable arrays of entries, without a scan, for arrays that are
 * replaced by slightly changed copies (the ledger's bounded collections: a thousand
 * episode keys, one appended and one dropped per decision).
 *
 * The index of an array is built on its first lookup and then carried to the copy made
 * from it: {@link carry} moves the Map from the old array to the new one and applies the
 * difference. The old array loses its index (a later lookup on it rebuilds one), so no
 * array ever sees an index that does not describe it, and results are exactly those of a
 * scan: this is a cache of derived data, invisible in what any function returns. Arrays
 * are held weakly, so a dropped state takes its index with it.
 */
export class CarriedIndex<T> {
  readonly #keyOf: (entry: T) => string;
  readonly #indexes = new WeakMap<readonly T[], Map<string, T>>();

  constructor(keyOf: (entry: T) => string) {
    this.#keyOf = keyOf;
  }

  /** The first entry with this key, as `entries.find` would answer. */
  get(entries: readonly T[], key: string): T | undefined {
    return this.#indexOf(entries)?.get(key) ?? (this.#indexes.has(entries) ? undefined : this.#scan(entries, key));
  }

  /**
   * Moves the index of `from`, if it has one, to `to`, made from `from` by removing the
   * entries `removed` and adding `added`. Anything that does not fit (an added key already
   * present) leaves `to` without an index, to be rebuilt on demand.
   */
  carry(from: readonly T[], to: readonly T[], removed: Iterable<T>, added: Iterable<T>): void {
    const index = this.#indexes.get(from);
    if (index === undefined || from === to) return;
    this.#indexes.delete(from);
    for (const entry of removed) {
      const key = this.#keyOf(entry);
      if (index.get(key) === entry) index.delete(key);
    }
    for (const entry of added) {
      const key = this.#keyOf(entry);
      if (index.has(key)) return;
      index.set(key, entry);
    }
    if (index.size === to.length) this.#indexes.set(to, index);
  }

  /** The index of `entries`, built now if needed; undefined when keys repeat (then lookups scan). */
  #indexOf(entries: readonly T[]): Map<string, T> | undefined {
    const known = this.#indexes.get(entries);
    if (known !== undefined) return known;
    const index = new Map<string, T>();
    for (const entry of entries) {
      const key = this.#keyOf(entry);
      if (index.has(key)) return undefined;
      index.set(key, entry);
    }
    this.#indexes.set(entries, index);
    return index;
  }

  #scan(entries: readonly T[], key: string): T | undefined {
    for (const entry of entries) if (this.#keyOf(entry) === key) return entry;
    return undefined;
  }
}
