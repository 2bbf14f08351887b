/**
 * A one-to-few index of strings (an owner's UID → its pods' keys), each list an
 * exact-size array replaced on change. The view keeps one entry per owner of a large
 * cluster, most with one to a handful of members: a Set costs about 150 bytes even for
 * one member and a growing array reserves slack, while an exact array costs 16 bytes plus
 * 8 per member. Changes come from watch events, rarely enough that copying a short list
 * on each is cheaper than the memory a mutable structure keeps.
 */
export class KeyLists {
  readonly #lists = new Map<string, readonly string[]>();

  get(key: string): readonly string[] {
    return this.#lists.get(key) ?? [];
  }

  add(key: string, member: string): void {
    const list = this.#lists.get(key);
    if (list === undefined) this.#lists.set(key, [member]);
    else if (!list.includes(member)) this.#lists.set(key, list.concat(member));
  }

  remove(key: string, member: string): void {
    const list = this.#lists.get(key);
    const at = list?.indexOf(member) ?? -1;
    if (list === undefined || at < 0) return;
    if (list.length === 1) this.#lists.delete(key);
    else this.#lists.set(key, list.toSpliced(at, 1));
  }

  /** Keys with at least one member. */
  get size(): number {
    return this.#lists.size;
  }
}
