import type { Episode } from '../core/episode.ts';

interface Slot {
  readonly key: string;
  readonly seq: number;
}

/**
 * The full episode records a process keeps, in recording order, bounded by a count and by
 * the metrics window. A Map alone cannot serve as this queue: V8 leaves a hole for every
 * deleted entry until the table is rebuilt, and reading the oldest entry walks over all
 * of them, so eviction from the front slows down with every record evicted. Here the
 * order lives in an array with a moving head (compacted once half of it is consumed), and
 * a record replaced under the same key leaves its old slot behind as stale.
 */
export class EpisodeRecords {
  readonly #max: number;
  readonly #records = new Map<string, { readonly episode: Episode; readonly seq: number }>();
  #order: Slot[] = [];
  #head = 0;
  #seq = 0;

  /** `max`: records kept at most; at least 1. */
  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  get size(): number {
    return this.#records.size;
  }

  /**
   * Keeps the record (replacing one under the same key, which then counts as the newest),
   * drops records older than `windowMs` before its time, then the oldest past the bound.
   * Returns how many were dropped for the bound (not for age).
   */
  remember(episode: Episode, windowMs: number): number {
    const cutoff = episode.at.getTime() - windowMs;
    for (let slot = this.#oldest(); slot !== undefined; slot = this.#oldest()) {
      const record = this.#records.get(slot.key);
      if (record !== undefined && record.episode.at.getTime() >= cutoff) break;
      this.#drop(slot);
    }
    const seq = ++this.#seq;
    this.#records.set(episode.key, { episode, seq });
    this.#order.push({ key: episode.key, seq });
    let evicted = 0;
    while (this.#records.size > this.#max) {
      const slot = this.#oldest();
      if (slot === undefined) break;
      this.#drop(slot);
      evicted++;
    }
    return evicted;
  }

  /** The records, oldest first. */
  *values(): Iterable<Episode> {
    for (let i = this.#head; i < this.#order.length; i++) {
      const slot = this.#order[i];
      const record = slot === undefined ? undefined : this.#records.get(slot.key);
      if (slot !== undefined && record !== undefined && record.seq === slot.seq) yield record.episode;
    }
  }

  /** The oldest live slot, skipping (and consuming) stale ones. */
  #oldest(): Slot | undefined {
    while (this.#head < this.#order.length) {
      const slot = this.#order[this.#head];
      if (slot !== undefined && this.#records.get(slot.key)?.seq === slot.seq) return slot;
      this.#advance();
    }
    return undefined;
  }

  #drop(slot: Slot): void {
    this.#records.delete(slot.key);
    this.#advance();
  }

  #advance(): void {
    this.#head++;
    if (this.#head >= 1024 && this.#head * 2 >= this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
  }
}
