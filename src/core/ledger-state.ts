/**
 * One agent's shared ledger state: a pure, versioned, bounded value (see ledger/state.ts).
 * Each collection lives in its own file under ledger/; this file gathers their public
 * names so that importers need one path.
 */
export { compactId, isHashedId } from './ledger/compact-id.ts';
export { enforceBounds } from './ledger/enforce-bounds.ts';
export { hasEpisodeKey, recordEpisodeKey } from './ledger/episode-keys.ts';
export { expire } from './ledger/expire.ts';
export { holdRequested, requestedFor } from './ledger/held-requests.ts';
export { recordJustification } from './ledger/justification.ts';
export {
  DEFAULT_LEDGER_LIMITS,
  LEDGER_BOUNDS,
  type LedgerBounds,
  type LedgerLimits,
  MAX_METRICS_WINDOW_MS,
  MAX_WINDOW_MS,
} from './ledger/limits.ts';
export {
  expireLeases,
  isLeaseHolder,
  leasedInstances,
  leaseOf,
  setLease,
  spendLease,
  withoutLease,
} from './ledger/leases.ts';
export { lossesWithin, recordLoss } from './ledger/losses.ts';
export { type ParsedState, parseState } from './ledger/parse.ts';
export { addProvenance, forgetGoneProvenance, forgetProvenance, hasProvenance } from './ledger/provenance.ts';
export { rateUsed } from './ledger/rate.ts';
export {
  confirmObserved,
  confirmReservation,
  releaseExpired,
  type ReservationRequest,
  reserve,
  reservedInstances,
} from './ledger/reservations.ts';
export {
  episodeSumsWithin,
  familyWithin,
  type FamilyObservation,
  recordEpisodeOnce,
  recordFamily,
  riskWithin,
} from './ledger/risk-buckets.ts';
export { serializeState } from './ledger/serialize.ts';
export {
  type AgentLedgerState,
  type EpisodeBucket,
  type EpisodeKeyEntry,
  emptyState,
  type FamilySnapshot,
  type HeldRequest,
  isEmptyState,
  type JustificationRecord,
  type Lease,
  LEDGER_COLLECTIONS,
  LEDGER_STATE_VERSION,
  type LedgerCollection,
  type LossEntry,
  type MinuteBucket,
  type ProvenanceEntry,
  type Reservation,
  type WorkloadNeed,
} from './ledger/state.ts';
