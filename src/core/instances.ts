import type { ExtraInstances, InstanceCount, Limits } from './types.ts';

/**
 * Applies a policy's view to a count: a CronJob that allows concurrent runs counts
 * `cronJobOverlap` runs at once (1 when the policy says nothing).
 */
export function countUnderPolicy(count: InstanceCount, limits: Limits): InstanceCount {
  if (count.extra.type !== 'cronjob-allow') return count;
  return { steady: count.steady, extra: { type: 'overlap', runs: limits.cronJobOverlap ?? 1 } };
}

/** Potential instances: the steady count plus what can run transiently (surge, overlap). */
export function potentialOf(count: InstanceCount): number {
  return potentialAt(count.steady, count.extra);
}

/** Potential instances for a given steady count under the same surge or overlap rule. */
export function potentialAt(steady: number, extra: ExtraInstances): number {
  switch (extra.type) {
    case 'none':
      return steady;
    case 'surge-fixed':
      // A rollout of a workload scaled to zero starts no surge pods.
      return steady === 0 ? 0 : steady + extra.instances;
    case 'surge-percent':
      // The Deployment controller rounds a percentage surge up.
      return steady + Math.ceil((steady * extra.percent) / 100);
    case 'overlap':
      return steady * extra.runs;
    case 'cronjob-allow':
      return steady;
  }
}

/**
 * The highest steady count whose potential instances fit in `room`, or -1 when not even
 * zero fits. Potential grows monotonically with the steady count, so a binary search works.
 */
export function highestSteadyWithin(room: number, extra: ExtraInstances): number {
  if (room < 0) return -1;
  let low = 0;
  let high = room; // potential is never below the steady count
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (potentialAt(mid, extra) <= room) low = mid;
    else high = mid - 1;
  }
  return low;
}
