import type { Clock } from '../clock.ts';

/** What {@link ShortCache.get} answers: a value, or that the caller's signal fired first. */
export type CacheAnswer<T> = { readonly value: T; readonly cached: boolean } | { readonly aborted: true };

interface Entry<T> {
  readonly value: T;
  readonly expiresAtMs: number;
}

interface Flight<T> {
  readonly promise: Promise<T>;
  readonly controller: AbortController;
  waiters: number;
}

export interface ShortCacheOptions {
  readonly clock: Clock;
  /** Entries kept at most; the oldest goes first (default 10,000). */
  readonly maxEntries?: number | undefined;
}

/**
 * A short-lived cache of lookups by key, with one lookup in flight per key.
 *
 * A burst of admission requests for one workload (an agent's retry loop, the mutating
 * and validating calls of one request, several policies naming one query) must cost the
 * source one lookup, not one each: later callers join the lookup in flight and then read
 * its answer until it expires. Each caller waits only as long as its own signal allows;
 * the lookup itself is aborted only once every caller waiting for it has gone, so one
 * caller's short deadline does not fail the others. An abandoned lookup is not cached.
 */
export class ShortCache<T> {
  readonly #clock: Clock;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, Entry<T>>();
  readonly #flights = new Map<string, Flight<T>>();

  constructor(options: ShortCacheOptions) {
    this.#clock = options.clock;
    this.#maxEntries = Math.max(1, options.maxEntries ?? 10_000);
  }

  /**
   * The value under `key`: cached, joined in flight, or loaded now. `load` must not reject
   * (turn failures into values); `ttlMs` says how long its answer is kept (0: not at all).
   */
  get(
    key: string,
    signal: AbortSignal,
    load: (signal: AbortSignal) => Promise<T>,
    ttlMs: (value: T) => number,
  ): Promise<CacheAnswer<T>> {
    const now = this.#clock.monotonicMs();
    const hit = this.#entries.get(key);
    if (hit !== undefined) {
      if (hit.expiresAtMs > now) return Promise.resolve({ value: hit.value, cached: true });
      this.#entries.delete(key);
    }
    if (signal.aborted) return Promise.resolve({ aborted: true });

    let flight = this.#flights.get(key);
    if (flight === undefined) flight = this.#start(key, load, ttlMs);
    const joined = flight;
    joined.waiters += 1;

    return new Promise((resolve, reject) => {
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        joined.waiters -= 1;
        if (joined.waiters === 0) {
          // Nobody waits any more: stop the lookup, and let the next caller start afresh.
          if (this.#flights.get(key) === joined) this.#flights.delete(key);
          joined.controller.abort(signal.reason);
        }
        resolve({ aborted: true });
      };
      signal.addEventListener('abort', onAbort, { once: true });
      joined.promise.then(
        (value) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          resolve({ value, cached: false });
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  /** Entries held now, expired ones included until they are read or evicted. */
  get size(): number {
    return this.#entries.size;
  }

  #start(key: string, load: (signal: AbortSignal) => Promise<T>, ttlMs: (value: T) => number): Flight<T> {
    const controller = new AbortController();
    // Through the executor, so that a load that throws before returning its promise rejects it.
    const promise = new Promise<T>((resolve) => resolve(load(controller.signal))).then(
      (value) => {
        if (this.#flights.get(key) === flight) this.#flights.delete(key);
        if (!controller.signal.aborted) this.#store(key, value, ttlMs(value));
        return value;
      },
      (error: unknown) => {
        if (this.#flights.get(key) === flight) this.#flights.delete(key);
        throw error;
      },
    );
    const flight: Flight<T> = { promise, controller, waiters: 0 };
    this.#flights.set(key, flight);
    return flight;
  }

  #store(key: string, value: T, ttlMs: number): void {
    if (!(ttlMs > 0)) return;
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, expiresAtMs: this.#clock.monotonicMs() + ttlMs });
  }
}
