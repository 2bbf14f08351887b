import { bucketInWindow, msOf } from './collection-helpers.ts';
import { leasedInstances } from './leases.ts';
import type { AgentLedgerState } from './state.ts';

// The rate buckets are filled in reservations.ts, when a reservation is confirmed or is
// charged on being dropped by the bound; this file holds what a rate limit reads.

/**
 * Instances the family added within the window ending at `now`: confirmed growth from
 * the buckets (whole minutes, rounded outward: the limit errs strict) plus pending
 * reservations admitted within the window, plus every live allowance lease whatever its
 * age (its holder may spend it up to its expiry). This is what a rate limit spends.
 */
export function rateUsed(state: AgentLedgerState, windowMs: number, now: Date): number {
  const t = msOf(now);
  const from = t - windowMs;
  let sum = 0;
  for (const b of state.rate) if (bucketInWindow(b, from)) sum += b.instances;
  for (const r of state.reservations) if (r.expiresAt > t && r.at >= from) sum += r.addedInstances;
  return sum + leasedInstances(state, now);
}
