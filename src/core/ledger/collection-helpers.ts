import { MINUTE_MS } from './limits.ts';
import type { LedgerCollection, MinuteBucket } from './state.ts';

/**
 * Small immutable helpers over the state's collections and times, shared by every
 * collection. Each returns its input unchanged when there is nothing to do, which is how
 * a mutator returns the same state when nothing changed.
 */

/** Epoch milliseconds of `now`: the unit every entry's time is stored in. */
export const msOf = (now: Date): number => now.getTime();
/** The epoch minute a time falls in: the key of a bucket. */
export const minuteOf = (ms: number): number => Math.floor(ms / MINUTE_MS);
/** A bucket counts toward a window when any part of its minute lies inside it: the rounding errs strict. */
export const bucketInWindow = (b: { readonly minute: number }, from: number): boolean => (b.minute + 1) * MINUTE_MS > from;

/** `items.filter(keep)`, but the same array when nothing is dropped. */
export function keepSame<T>(items: readonly T[], keep: (item: T) => boolean): readonly T[] {
  let out: T[] | undefined;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as T;
    if (keep(item)) {
      out?.push(item);
    } else if (!out) {
      out = items.slice(0, i);
    }
  }
  return out ?? items;
}

/**
 * `keepSame(items, (e) => e.at >= cutoff)` as a plain loop: every decision expires up to
 * a thousand episode keys, and a comparison inlined here costs a fraction of a call
 * through a predicate shared by every collection.
 */
export function keepSince<T extends { readonly at: number }>(items: readonly T[], cutoff: number): readonly T[] {
  let i = 0;
  while (i < items.length && (items[i] as T).at >= cutoff) i++;
  if (i === items.length) return items;
  const out = items.slice(0, i);
  for (i++; i < items.length; i++) {
    const item = items[i] as T;
    if (item.at >= cutoff) out.push(item);
  }
  return out;
}

/**
 * Drops the oldest entries beyond `cap`; returns the kept ones and how many of the dropped
 * were still live (those are evictions; dropping an expired one is not).
 */
export function capOldest<T>(items: readonly T[], cap: number, live: (item: T) => boolean): { kept: readonly T[]; evicted: number } {
  if (items.length <= cap) return { kept: items, evicted: 0 };
  const dropped = items.slice(0, items.length - cap);
  return { kept: items.slice(items.length - cap), evicted: dropped.filter(live).length };
}

/**
 * `capOldest([...items, item], cap, live)` without building the longer array first: on
 * the request path these collections hold up to a thousand entries, and a spread of
 * that size followed by a slice is most of what recording one entry costs.
 */
export function appendCapped<T>(items: readonly T[], item: T, cap: number, live: (item: T) => boolean): { kept: readonly T[]; evicted: number } {
  const drop = Math.max(0, items.length + 1 - cap);
  let evicted = 0;
  for (let i = 0; i < drop && i < items.length; i++) if (live(items[i] as T)) evicted++;
  const kept = drop === 0 ? items.slice() : items.slice(drop);
  // A cap smaller than one leaves no room; boundsOf keeps every cap at 1 or more.
  if (kept.length < cap) kept.push(item);
  else evicted += live(item) ? 1 : 0;
  return { kept, evicted };
}

/** Adds `n` evictions of `collection` (the same record when `n` is 0); the count saturates rather than losing precision. */
export function bump(
  evictions: Readonly<Record<LedgerCollection, number>>,
  collection: LedgerCollection,
  n: number,
): Readonly<Record<LedgerCollection, number>> {
  if (n === 0) return evictions;
  return { ...evictions, [collection]: Math.min(Number.MAX_SAFE_INTEGER, evictions[collection] + n) };
}

/** Adds to the bucket of `minute`, keeping buckets sorted by minute; caps by dropping the oldest. */
export function addToBuckets(
  buckets: readonly MinuteBucket[],
  minute: number,
  instances: number,
  cap: number,
): { buckets: readonly MinuteBucket[]; evicted: number } {
  if (instances === 0) return { buckets, evicted: 0 };
  const out = buckets.slice();
  let i = out.length;
  while (i > 0 && (out[i - 1] as MinuteBucket).minute > minute) i--;
  const at = out[i - 1];
  if (at && at.minute === minute) {
    out[i - 1] = { minute, instances: Math.min(Number.MAX_SAFE_INTEGER, at.instances + instances) };
  } else {
    out.splice(i, 0, { minute, instances });
  }
  const { kept, evicted } = capOldest(out, cap, () => true);
  return { buckets: kept, evicted };
}

/** An emptied optional collection is left absent, so that it reads back (and compares) as it was written. */
export function orAbsent<T>(items: readonly T[]): readonly T[] | undefined {
  return items.length === 0 ? undefined : items;
}
