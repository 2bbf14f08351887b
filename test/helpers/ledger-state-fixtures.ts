import { recordEpisodeKey } from '../../src/core/ledger/episode-keys.ts';
import { holdRequested } from '../../src/core/ledger/held-requests.ts';
import type { LedgerLimits } from '../../src/core/ledger/limits.ts';
import { recordLoss } from '../../src/core/ledger/losses.ts';
import { addProvenance } from '../../src/core/ledger/provenance.ts';
import { confirmReservation, reserve } from '../../src/core/ledger/reservations.ts';
import { type AgentLedgerState, emptyState } from '../../src/core/ledger/state.ts';
import type { EpisodeRecord } from '../../src/admission/episode-record.ts';
import { NO_EPISODES } from '../../src/core/risk.ts';

/** The times, limits and keys the ledger state's unit tests share. */

/** A fixed start: every test time is an offset from it. */
export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
/** The time `ms` after {@link T0}. */
export const at = (ms: number) => new Date(T0 + ms);
export const MIN = 60_000;
export const HOUR = 60 * MIN;

/** A one-hour metrics window and a two-hour longest window, shorter than the defaults so that tests cross them. */
export const limits: LedgerLimits = { windowMs: HOUR, maxWindowMs: 2 * HOUR, reservationTtlMs: 2 * MIN };
/** {@link limits} with lower caps, to reach a bound in a few steps. */
export const small = (bounds: LedgerLimits['bounds']): LedgerLimits => ({ ...limits, bounds });
/** An episode key of the shape the admission code builds (long enough to be hashed). */
export const key = (n: number | string) => JSON.stringify(['system:serviceaccount:agents:a', 'uid-w', 1, n]);
/** A reservation request under key `k`. */
export const res = (k: string, added = 1, workload = 'uid-w', steady = 2) => ({ key: k, workload, steady, addedInstances: added });

/** A state with an entry in every collection but the risk fields, for the serialisation tests. */
export function sampleState(): AgentLedgerState {
  let s = holdRequested(emptyState(), key(9), 9, at(0), limits);
  s = recordEpisodeKey(s, key(9), at(0), limits).state;
  s = addProvenance(s, 'uid-a', at(0), limits);
  s = reserve(s, res(key(9), 2), at(0), limits);
  s = reserve(s, res(key(8), 1), at(0), limits);
  s = confirmReservation(s, key(8), at(1), limits).state;
  s = recordLoss(s, 'pod-1', at(0), at(0), limits).state;
  return s;
}

/** The record of an admitted growth of `instances` under `key` (its own workload), without risk sums. */
export function growthRecord(key: string, instances: number, at: Date): EpisodeRecord {
  return {
    key,
    sumsFor: () => NO_EPISODES,
    observed: undefined,
    growth: { reservation: { key, workload: key, steady: 1, addedInstances: instances }, confirmAtOnce: false },
    at,
  };
}
