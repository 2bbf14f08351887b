import type { EpisodeSums } from '../risk.ts';

/**
 * One agent's shared ledger state (DESIGN.md "State, and more than one replica"), as a
 * pure, versioned, bounded value. Everything a decision depends on that the cluster does
 * not already hold lives here: the requested counts held by the mutating call, the
 * recent episode keys, provenance, reservations of admitted growth, the per-minute rate
 * of growth and the losses. Nothing here does I/O or reads a clock: `now` is a parameter,
 * so that several guard processes can re-run the same functions on a fresher copy after a
 * compare-and-swap conflict and reach the same answer.
 *
 * Every mutator returns the SAME object when nothing changed, so a caller can tell
 * "nothing to write" by reference equality. Times are stored as epoch milliseconds and
 * minutes (compact JSON); collections keep insertion order, oldest first.
 *
 * The risk metrics (core/risk.ts) add three optional fields to version 1: per-minute
 * episode sums (`episodeBuckets`), the family's size at the latest episode (`family`) and
 * the latest need of each workload judged (`workloadNeeds`). They are optional and absent
 * when empty, so the format stays version 1: an older guard reads everything it knows and
 * ignores them (and, writing back, drops them: the gauges of that agent restart empty
 * during a rolling upgrade, while the counters, the source of truth, are unaffected); a
 * state without them reads as "no episodes yet".
 */

/** The format version this code writes. Readers accept it and every newer one. */
export const LEDGER_STATE_VERSION = 1;

/** The collections whose entries can be evicted by a bound (for metrics). */
export type LedgerCollection = 'held' | 'episodeKeys' | 'provenance' | 'reservations' | 'rate' | 'losses' | 'leases';

/** Every collection {@link LedgerCollection} names, in the order the state lists them. */
export const LEDGER_COLLECTIONS: readonly LedgerCollection[] = [
  'held',
  'episodeKeys',
  'provenance',
  'reservations',
  'rate',
  'losses',
  'leases',
];

/** A requested count kept by the mutating call in clamp mode under an episode key. */
export interface HeldRequest {
  readonly key: string;
  readonly requested: number;
  readonly at: number;
}

/** An episode key recorded by the validating call. */
export interface EpisodeKeyEntry {
  readonly key: string;
  readonly at: number;
}

/** A workload the agent created or scaled up, by UID, with the time it was last seen. */
export interface ProvenanceEntry {
  readonly uid: string;
  readonly at: number;
}

/** Growth admitted by the guard that the cluster view has not shown yet. */
export interface Reservation {
  /** The episode key that admitted it. */
  readonly key: string;
  /** The workload: its UID, or group/kind/namespace/name on CREATE (see `workloadKeyOf`). */
  readonly workload: string;
  /** The steady count the view must show to confirm it. */
  readonly steady: number;
  /** Potential instances the growth adds: charged to the rate and the family total. */
  readonly addedInstances: number;
  readonly at: number;
  readonly expiresAt: number;
}

/**
 * A share of the agent's allowance held by one guard replica (ledger/leases.ts): charged
 * to the rate and the family's pending instances while it lives, spent by its holder
 * without a write on the admission path.
 */
export interface Lease {
  /** The replica: its pod name and a suffix unique to the process. */
  readonly holder: string;
  /** Instances not spent yet, as of the holder's last write. */
  readonly instances: number;
  readonly at: number;
  readonly expiresAt: number;
}

/** Instances in one epoch minute (`minute` = floor(ms / 60 000)). */
export interface MinuteBucket {
  readonly minute: number;
  readonly instances: number;
}

/** A loss, remembered by pod UID so that it counts once. */
export interface LossEntry {
  readonly uid: string;
  readonly at: number;
}

/** The sums of the episodes recorded in one epoch minute (core/risk.ts's sufficient statistics). */
export interface EpisodeBucket extends EpisodeSums {
  readonly minute: number;
}

/** The family's potential instances as the decision that recorded the latest episode saw them. */
export interface FamilySnapshot {
  readonly instances: number;
  readonly at: number;
}

/** The latest measured need of a workload the agent's episodes judged. */
export interface WorkloadNeed {
  /** Stored as `compactId(workloadKeyOf(change))`. */
  readonly workload: string;
  readonly need: number;
  readonly at: number;
}

/** One agent's ledger state: see the comment at the top of this file. */
export interface AgentLedgerState {
  readonly version: number;
  readonly held: readonly HeldRequest[];
  readonly episodeKeys: readonly EpisodeKeyEntry[];
  readonly provenance: readonly ProvenanceEntry[];
  readonly reservations: readonly Reservation[];
  /** Instances added by the family, per minute (confirmed growth). */
  readonly rate: readonly MinuteBucket[];
  readonly losses: readonly LossEntry[];
  /**
   * Instances lost per minute. The count comes from these buckets, not from `losses`: a
   * loss record evicted by the bound must not lower the pressure (an eviction can only
   * cause a double count, the strict direction).
   */
  readonly lossBuckets: readonly MinuteBucket[];
  /** Entries dropped by a bound while still live, cumulative, by collection. */
  readonly evictions: Readonly<Record<LedgerCollection, number>>;
  /**
   * Per-minute sums of the agent's new episodes, for the windowed risk gauges (absent:
   * none). Recorded only when an episode key is recorded as new, so a retry never adds.
   */
  readonly episodeBuckets?: readonly EpisodeBucket[] | undefined;
  /** The family's size at the latest episode (absent: none within the window). */
  readonly family?: FamilySnapshot | undefined;
  /** The latest need of each workload judged within the window (absent: none). */
  readonly workloadNeeds?: readonly WorkloadNeed[] | undefined;
  /**
   * The justification the family's last recorded growth carried, as a hash (absent: none
   * yet): a growth whose justification hashes the same is not fresh. Optional in version 1,
   * like the risk fields: an older guard drops it, which only makes the next one fresh.
   */
  readonly justification?: JustificationRecord | undefined;
  /**
   * Allowance leases held by guard replicas (absent: none). Optional in version 1: an older
   * guard drops them when it writes, so during a rolling upgrade from a guard without
   * leases a holder may spend up to one lease that the older replica does not see.
   */
  readonly leases?: readonly Lease[] | undefined;
}

/** The hash of the justification of the family's last recorded growth, and when it was recorded. */
export interface JustificationRecord {
  readonly hash: string;
  readonly at: number;
}

/** No evictions yet: the count each collection starts from. */
export const NO_EVICTIONS: Readonly<Record<LedgerCollection, number>> = {
  held: 0,
  episodeKeys: 0,
  provenance: 0,
  reservations: 0,
  rate: 0,
  losses: 0,
  leases: 0,
};

const EMPTY: AgentLedgerState = {
  version: LEDGER_STATE_VERSION,
  held: [],
  episodeKeys: [],
  provenance: [],
  reservations: [],
  rate: [],
  losses: [],
  lossBuckets: [],
  evictions: NO_EVICTIONS,
};

/** The state of an agent the ledger has recorded nothing for; always the same object. */
export function emptyState(): AgentLedgerState {
  return EMPTY;
}

/** True when the state holds nothing but eviction counts. */
export function isEmptyState(state: AgentLedgerState): boolean {
  return (
    state.held.length === 0 &&
    state.episodeKeys.length === 0 &&
    state.provenance.length === 0 &&
    state.reservations.length === 0 &&
    state.rate.length === 0 &&
    state.losses.length === 0 &&
    state.lossBuckets.length === 0 &&
    (state.episodeBuckets ?? []).length === 0 &&
    state.family === undefined &&
    (state.workloadNeeds ?? []).length === 0 &&
    state.justification === undefined &&
    (state.leases ?? []).length === 0
  );
}
