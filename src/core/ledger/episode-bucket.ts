import type { BasisSums, EpisodeSums } from '../risk.ts';
import { capOldest } from './collection-helpers.ts';
import { MAX_TIME_MS, MINUTE_MS } from './limits.ts';
import { type Fields, isCount, isObject } from './read-fields.ts';
import type { EpisodeBucket } from './state.ts';

// One episode bucket: the per-minute sums of core/risk.ts, built, merged, checked and read.

/** Throws a RangeError unless every count of `sums` is a whole number of 0 or more: buckets hold instances. */
export function checkSums(sums: EpisodeSums): void {
  const whole = (v: number, what: string) => {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`episode ${what} must be a whole number of 0 or more, got ${v}`);
  };
  whole(sums.measured, 'count');
  whole(sums.needSum, 'need');
  whole(sums.fallback, 'fallback count');
  whole(sums.unmeasured, 'unmeasured count');
  for (const b of [sums.requested, sums.admitted]) {
    whole(b.overuse, 'overuse');
    whole(b.growth, 'growth');
    whole(b.surplus, 'surplus');
  }
}

// Sums saturate at the largest safe integer rather than lose precision.
const capped = (a: number, b: number): number => Math.min(Number.MAX_SAFE_INTEGER, a + b);
const addBasisCapped = (a: BasisSums, b: BasisSums): BasisSums => ({
  overuse: capped(a.overuse, b.overuse),
  growth: capped(a.growth, b.growth),
  surplus: capped(a.surplus, b.surplus),
});

function bucketOf(minute: number, sums: EpisodeSums): EpisodeBucket {
  return {
    minute,
    measured: sums.measured,
    needSum: sums.needSum,
    fallback: sums.fallback,
    unmeasured: sums.unmeasured,
    requested: { overuse: sums.requested.overuse, growth: sums.requested.growth, surplus: sums.requested.surplus },
    admitted: { overuse: sums.admitted.overuse, growth: sums.admitted.growth, surplus: sums.admitted.surplus },
  };
}

function mergeBucket(a: EpisodeBucket, sums: EpisodeSums): EpisodeBucket {
  return {
    minute: a.minute,
    measured: capped(a.measured, sums.measured),
    needSum: capped(a.needSum, sums.needSum),
    fallback: capped(a.fallback, sums.fallback),
    unmeasured: capped(a.unmeasured, sums.unmeasured),
    requested: addBasisCapped(a.requested, sums.requested),
    admitted: addBasisCapped(a.admitted, sums.admitted),
  };
}

/** Adds to the bucket of `minute`, keeping buckets sorted by minute; caps by dropping the oldest. */
export function addEpisodeBucket(buckets: readonly EpisodeBucket[], minute: number, sums: EpisodeSums, cap: number): readonly EpisodeBucket[] {
  const out = buckets.slice();
  let i = out.length;
  while (i > 0 && (out[i - 1] as EpisodeBucket).minute > minute) i--;
  const at = out[i - 1];
  if (at && at.minute === minute) out[i - 1] = mergeBucket(at, sums);
  else out.splice(i, 0, bucketOf(minute, sums));
  // The metrics window is at most MAX_METRICS_WINDOW_MS, which the cap covers: what it
  // drops lies outside every window a gauge is computed over.
  return capOldest(out, cap, () => true).kept;
}

/** Buckets sorted by minute with one per minute (input from elsewhere may repeat one). */
export function mergeSameMinute(buckets: readonly EpisodeBucket[]): readonly EpisodeBucket[] {
  const out: EpisodeBucket[] = [];
  for (const b of buckets) {
    const last = out[out.length - 1];
    if (last && last.minute === b.minute) out[out.length - 1] = mergeBucket(last, b);
    else out.push(b);
  }
  return out;
}

function readBasis(v: unknown): BasisSums | undefined {
  if (!isObject(v)) return undefined;
  const { overuse, growth, surplus } = v;
  const n = Number.MAX_SAFE_INTEGER;
  return isCount(overuse, n) && isCount(growth, n) && isCount(surplus, n) ? { overuse, growth, surplus } : undefined;
}

/** An episode bucket read from a serialised state, or undefined when it is not one. */
export function readEpisodeBucket(v: Fields): EpisodeBucket | undefined {
  const n = Number.MAX_SAFE_INTEGER;
  const requested = readBasis(v.requested);
  const admitted = readBasis(v.admitted);
  if (!requested || !admitted) return undefined;
  if (!isCount(v.minute, MAX_TIME_MS / MINUTE_MS)) return undefined;
  if (!isCount(v.measured, n) || !isCount(v.needSum, n) || !isCount(v.fallback, n) || !isCount(v.unmeasured, n)) return undefined;
  return { minute: v.minute, measured: v.measured, needSum: v.needSum, fallback: v.fallback, unmeasured: v.unmeasured, requested, admitted };
}
