import { leasedInstances, rateUsed, reservedInstances } from '../core/ledger-state.ts';
import type { Policy } from '../core/types.ts';
import type { LeaseRoom } from '../cluster/allowance-leases.ts';

/** What a decision saw of one enforcing policy's family: the view's potential instances and the judged workload's own after it. */
export interface FamilyRoomInput {
  readonly policy: Policy;
  /** Potential instances of the rest of the family in the view (without pending growth). */
  readonly viewPotential: number | undefined;
  /** Potential instances of the judged workload after the decision. */
  readonly ownPotential: number;
}

/** The room when no policy bounds the shared allowance: the lease is then capped only by its own maximum. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/**
 * The room the decision's enforcing policies leave in what replicas share: each rate limit's
 * instances not yet used in its window, and each family bound's potential instances not yet
 * held by the view, the pending reservations and the other replicas' leases. Recomputed on
 * whatever state a lease is granted from, so a grant never charges more than the policies
 * leave. Audit-mode policies bound nothing.
 */
export function leaseRoom(inputs: readonly FamilyRoomInput[]): LeaseRoom {
  const bounding = inputs.filter(({ policy }) => policy.mode !== 'audit' && (policy.limits.rate !== undefined || policy.limits.perFamily !== undefined));
  return (state, now) => {
    let room = UNBOUNDED;
    const pending = reservedInstances(state, now) + leasedInstances(state, now);
    for (const { policy, viewPotential, ownPotential } of bounding) {
      const { rate, perFamily } = policy.limits;
      if (rate !== undefined) room = Math.min(room, rate.instances - rateUsed(state, rate.perMs, now));
      // A family the view could not show (stale) leaves no room to lease.
      if (perFamily !== undefined) room = viewPotential === undefined ? 0 : Math.min(room, perFamily - viewPotential - ownPotential - pending);
    }
    return Math.max(0, room);
  };
}
