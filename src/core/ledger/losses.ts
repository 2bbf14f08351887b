import { addToBuckets, appendCapped, bucketInWindow, bump, minuteOf, msOf } from './collection-helpers.ts';
import { compactId } from './compact-id.ts';
import { boundsOf, count, type LedgerLimits, maxWindowOf } from './limits.ts';
import { type Fields, isId, isTime } from './read-fields.ts';
import type { AgentLedgerState, LossEntry } from './state.ts';

/**
 * Records a loss once per pod UID (or any stable identifier of the loss event). `at` is
 * when the loss happened as the view saw it, not when it was noticed again after a
 * re-list: a loss older than the longest window is ignored, so that a UID forgotten after
 * the window cannot come back as a fresh loss.
 */
export function recordLoss(
  state: AgentLedgerState,
  uid: string,
  at: Date,
  now: Date,
  limits: LedgerLimits,
  instances = 1,
): { readonly state: AgentLedgerState; readonly isNew: boolean } {
  const id = compactId(uid);
  const when = msOf(at);
  const longCutoff = msOf(now) - maxWindowOf(limits);
  if (when < longCutoff || state.losses.some((l) => l.uid === id)) return { state, isNew: false };
  const bounds = boundsOf(limits);
  const { kept, evicted } = appendCapped(state.losses, { uid: id, at: when }, bounds.losses, (l) => l.at >= longCutoff);
  const added = addToBuckets(state.lossBuckets, minuteOf(when), count(instances, 'instances'), bounds.buckets);
  return {
    state: {
      ...state,
      losses: kept,
      lossBuckets: added.buckets,
      evictions: bump(state.evictions, 'losses', evicted + added.evicted),
    },
    isNew: true,
  };
}

/** Instances the family lost within the window ending at `now` (whole minutes, rounded outward). */
export function lossesWithin(state: AgentLedgerState, windowMs: number, now: Date): number {
  const from = msOf(now) - windowMs;
  let sum = 0;
  for (const b of state.lossBuckets) if (bucketInWindow(b, from)) sum += b.instances;
  return sum;
}

/** A loss record read from a serialised state, or undefined when it is not one. */
export function readLoss(v: Fields): LossEntry | undefined {
  return isId(v.uid) && isTime(v.at) ? { uid: v.uid, at: v.at } : undefined;
}
