import {
  type AgentLedgerState,
  addProvenance,
  confirmReservation,
  type FamilyObservation,
  type LedgerLimits,
  recordEpisodeOnce,
  recordFamily,
  recordJustification,
  requestedFor,
  type ReservationRequest,
  reserve,
} from '../core/ledger-state.ts';
import type { EpisodeSums } from '../core/risk.ts';

/** What an admitted growth spends besides its episode: the reservation and what comes with it. */
export interface GrowthSpend {
  readonly reservation: ReservationRequest;
  /** The workload's UID, added to the agent's provenance (absent on a CREATE: no UID yet). */
  readonly uid?: string | undefined;
  /** The hash of the justification it carried: the next growth must bring another. */
  readonly justificationHash?: string | undefined;
  /** Confirm the reservation at once: a view built from the requests themselves already shows it. */
  readonly confirmAtOnce: boolean;
}

/**
 * Everything a validating decision writes to the agent's ledger, as data: applied inside
 * the decision's own transaction, or after the answer (a denial; a growth spent from an
 * allowance lease), always by {@link applyEpisodeRecord}, so that both ways write the same.
 */
export interface EpisodeRecord {
  readonly key: string;
  /**
   * The episode's risk sums given the agent's own requested count the mutating call held
   * under the key (undefined: none held). Resolved where the record is applied: the
   * mutating call may have run on another replica, whose hold is in the shared state by then.
   */
  readonly sumsFor: (held: number | undefined) => EpisodeSums;
  readonly observed: FamilyObservation | undefined;
  /** Absent for a denial: it spends nothing. */
  readonly growth: GrowthSpend | undefined;
  /** When it was decided: the times the entries carry, wherever they are written. */
  readonly at: Date;
}

/** What applying a record found: whether its key was new, the count held under it, and the sums it wrote. */
export interface RecordOutcome {
  readonly isNew: boolean;
  /** Instances its reservation newly charged: 0 when the same growth is reserved already (a retry, a repeat before the view confirmed it). */
  readonly charged: number;
  readonly held: number | undefined;
  readonly sums: EpisodeSums;
}

/**
 * Applies a record: its episode key with its risk sums and the family it saw only when the
 * key is new (a retry loop can never inflate E, O or AOC), then the growth's reservation,
 * provenance and justification (each idempotent). Pure.
 */
export function applyEpisodeRecord(
  state: AgentLedgerState,
  record: EpisodeRecord,
  limits: LedgerLimits,
): RecordOutcome & { readonly state: AgentLedgerState } {
  const { key, observed, growth, at } = record;
  const held = requestedFor(state, key, at, limits);
  const sums = record.sumsFor(held);
  const recorded = recordEpisodeOnce(state, key, sums, at, limits);
  let next = recorded.isNew && observed !== undefined ? recordFamily(recorded.state, observed, at, limits) : recorded.state;
  let charged = 0;
  if (growth !== undefined) {
    const unreserved = next.reservations;
    next = reserve(next, growth.reservation, at, limits);
    if (next.reservations !== unreserved) charged = growth.reservation.addedInstances;
    if (growth.confirmAtOnce) next = confirmReservation(next, key, at, limits).state;
    if (growth.uid) next = addProvenance(next, growth.uid, at, limits);
    if (growth.justificationHash) next = recordJustification(next, growth.justificationHash, at);
  }
  return { state: next, isNew: recorded.isNew, charged, held, sums };
}
