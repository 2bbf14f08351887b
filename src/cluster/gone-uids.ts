/**
 * UIDs of workloads the view saw deleted, the most recent `capacity` of them. Kubernetes
 * never reuses a UID, so a UID seen deleted is gone for good: the ledger can forget its
 * provenance at once instead of letting dead entries take the places of live ones in its
 * bounded list. Only a real deletion may be marked (a DELETED event, or the same name
 * coming back with a new UID), never an object the view merely stopped counting.
 */
export class GoneUids {
  readonly #capacity: number;
  readonly #set = new Set<string>();
  #order: string[] = [];
  #head = 0;

  /** `capacity`: UIDs remembered at most; at least 1. */
  constructor(capacity = 10_000) {
    this.#capacity = Math.max(1, capacity);
  }

  get size(): number {
    return this.#set.size;
  }

  mark(uid: string): void {
    if (this.#set.has(uid)) return;
    this.#set.add(uid);
    this.#order.push(uid);
    while (this.#set.size > this.#capacity) {
      const oldest = this.#order[this.#head++];
      if (oldest !== undefined) this.#set.delete(oldest);
    }
    // The queue is an array with a moving head (a Map used as a queue slows down with
    // every deletion); compacted once half of it is consumed.
    if (this.#head >= 1024 && this.#head * 2 >= this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
  }

  has(uid: string): boolean {
    return this.#set.has(uid);
  }
}
