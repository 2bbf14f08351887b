import { riskFields } from './risk-buckets.ts';
import { type AgentLedgerState, LEDGER_STATE_VERSION } from './state.ts';

/** The state as JSON, always written in this code's format version. */
export function serializeState(state: AgentLedgerState): string {
  return JSON.stringify({
    version: LEDGER_STATE_VERSION,
    held: state.held,
    episodeKeys: state.episodeKeys,
    provenance: state.provenance,
    reservations: state.reservations,
    rate: state.rate,
    losses: state.losses,
    lossBuckets: state.lossBuckets,
    evictions: evictionsOf(state),
    // Written only when there is something: a state without episodes keeps its exact v1 form.
    ...riskFields(state),
    ...(state.justification ? { justification: state.justification } : {}),
    ...(state.leases && state.leases.length > 0 ? { leases: state.leases } : {}),
  });
}

/** The eviction counts; the leases' count only once there is one, so that a state without leases keeps its earlier form. */
function evictionsOf(state: AgentLedgerState): Readonly<Record<string, number>> {
  if (state.evictions.leases !== 0) return state.evictions;
  const { leases: _none, ...rest } = state.evictions;
  return rest;
}
