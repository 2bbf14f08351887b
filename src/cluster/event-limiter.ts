/**
 * At most `limit` events per key within a sliding window: a runaway agent retrying a
 * denied request a thousand times a minute must not write a thousand Events to etcd.
 * Pure apart from the times passed in; keys with nothing in the window are forgotten.
 */
export class EventLimiter {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #sent = new Map<string, number[]>();

  constructor(limit = 10, windowMs = 60_000) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  /** Takes one slot for `key` at `nowMs`; false when the key has used its slots in the window. */
  take(key: string, nowMs: number): boolean {
    const times = (this.#sent.get(key) ?? []).filter((t) => nowMs - t < this.#windowMs);
    if (times.length >= this.#limit) {
      this.#sent.set(key, times);
      return false;
    }
    times.push(nowMs);
    this.#sent.set(key, times);
    if (this.#sent.size > 10_000) this.#prune(nowMs);
    return true;
  }

  #prune(nowMs: number): void {
    for (const [key, times] of this.#sent) {
      if (times.every((t) => nowMs - t >= this.#windowMs)) this.#sent.delete(key);
    }
  }
}
