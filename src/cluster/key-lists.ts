/** Lists longer than this become Sets: copying them on every change would cost n² over a LIST. */
const SET_THRESHOLD = 64;

/**
 * A one-to-few index of strings (an owner's UID → its pods' keys). Most owners of a large
 * cluster have one to a handful of members, kept as exact-size arrays replaced on change:
 * a Set costs about 150 bytes even for one member and a growing array reserves slack,
 * while an exact array costs 16 bytes plus 8 per member. An owner with many members (a
 * Job or ReplicaSet with thousands of pods) moves to a Set, so that the initial LIST and
 * pod churn do not copy its list on every change. Either way `get` returns an array that
 * later changes never touch, so a caller may change the index while iterating it.
 */
export class KeyLists {
  readonly #lists = new Map<string, readonly string[] | Set<string>>();

  /** The members of `key`, in insertion order; empty when it has none. */
  get(key: string): readonly string[] {
    const list = this.#lists.get(key);
    if (list === undefined) return [];
    return list instanceof Set ? Array.from(list) : list;
  }

  /** Adds a member once. */
  add(key: string, member: string): void {
    const list = this.#lists.get(key);
    if (list === undefined) this.#lists.set(key, [member]);
    else if (list instanceof Set) list.add(member);
    else if (!list.includes(member)) {
      this.#lists.set(key, list.length >= SET_THRESHOLD ? new Set([...list, member]) : list.concat(member));
    }
  }

  /** Removes a member; a key left without members is forgotten. */
  remove(key: string, member: string): void {
    const list = this.#lists.get(key);
    if (list === undefined) return;
    if (list instanceof Set) {
      list.delete(member);
      if (list.size === 0) this.#lists.delete(key);
      return;
    }
    const at = list.indexOf(member);
    if (at < 0) return;
    if (list.length === 1) this.#lists.delete(key);
    else this.#lists.set(key, list.toSpliced(at, 1));
  }

  /** Keys with at least one member. */
  get size(): number {
    return this.#lists.size;
  }
}
