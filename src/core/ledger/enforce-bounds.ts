import { bump, capOldest, msOf } from './collection-helpers.ts';
import { capLeases } from './leases.ts';
import { boundsOf, type LedgerLimits } from './limits.ts';
import { capReservations } from './reservations.ts';
import { capRisk } from './risk-buckets.ts';
import type { AgentLedgerState } from './state.ts';

/**
 * Applies the caps to a state from elsewhere (a newer guard may use larger ones): keeps
 * the newest entries, counts what is dropped. Mutators already keep their own collection
 * within bounds; this is for parsed input and a final check before a write.
 */
export function enforceBounds(input: AgentLedgerState, limits: LedgerLimits, now?: Date): AgentLedgerState {
  const b = boundsOf(limits);
  // Reservations first: the ones dropped are charged to the rate, which is capped below.
  const state = capLeases(capReservations(input, b, now ? msOf(now) : Number.NEGATIVE_INFINITY), limits);
  const held = capOldest(state.held, b.held, () => true);
  const episodeKeys = capOldest(state.episodeKeys, b.episodeKeys, () => true);
  const provenance = capOldest(state.provenance, b.provenance, () => true);
  const rate = capOldest(state.rate, b.buckets, () => true);
  const losses = capOldest(state.losses, b.losses, () => true);
  const lossBuckets = capOldest(state.lossBuckets, b.buckets, () => true);
  const total =
    held.evicted + episodeKeys.evicted + provenance.evicted + rate.evicted + losses.evicted + lossBuckets.evicted;
  if (total === 0) return capRisk(state, b);
  let evictions = state.evictions;
  evictions = bump(evictions, 'held', held.evicted);
  evictions = bump(evictions, 'episodeKeys', episodeKeys.evicted);
  evictions = bump(evictions, 'provenance', provenance.evicted);
  evictions = bump(evictions, 'rate', rate.evicted);
  evictions = bump(evictions, 'losses', losses.evicted + lossBuckets.evicted);
  return {
    ...capRisk(state, b),
    held: held.kept,
    episodeKeys: episodeKeys.kept,
    provenance: provenance.kept,
    rate: rate.kept,
    losses: losses.kept,
    lossBuckets: lossBuckets.kept,
    evictions,
  };
}
