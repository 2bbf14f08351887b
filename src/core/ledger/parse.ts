import { enforceBounds } from './enforce-bounds.ts';
import { readEpisodeKey } from './episode-keys.ts';
import { readHeldRequest } from './held-requests.ts';
import { readJustification } from './justification.ts';
import { DEFAULT_LEDGER_LIMITS, type LedgerLimits } from './limits.ts';
import { readLease } from './leases.ts';
import { readLoss } from './losses.ts';
import { readProvenance } from './provenance.ts';
import { byMinute, type Fields, isCount, isObject, readList, readMinuteBucket } from './read-fields.ts';
import { readReservation } from './reservations.ts';
import { readRiskFields } from './risk-buckets.ts';
import { type AgentLedgerState, emptyState, type Lease, LEDGER_COLLECTIONS, LEDGER_STATE_VERSION, type LedgerCollection, NO_EVICTIONS } from './state.ts';

/** A parsed state, the problems met on the way (empty when clean) and the version it was written in. */
export interface ParsedState {
  readonly state: AgentLedgerState;
  readonly problems: readonly string[];
  readonly sourceVersion: number | undefined;
}

/**
 * Reads a serialised state. Accepts version 1 and every newer version: a newer guard may
 * add fields (unknown ones are ignored) but must keep the meaning of the ones here, so
 * that during a rolling upgrade an older guard still reads what it knows; a newer guard
 * reads an older ledger the same way. Entries of the wrong shape are dropped one by one;
 * anything unreadable as a whole gives an empty state. Never throws: a problem is
 * reported, and the caller logs it.
 */
export function parseState(text: string | undefined, limits: LedgerLimits = DEFAULT_LEDGER_LIMITS): ParsedState {
  if (text === undefined || text === '') return { state: emptyState(), problems: [], sourceVersion: undefined };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return unreadable(`not JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) return unreadable('not a JSON object');
  const version = raw.version;
  if (!Number.isSafeInteger(version) || (version as number) < 1) {
    return unreadable(`unknown ledger version ${JSON.stringify(version)}`);
  }
  const problems: string[] = [];
  const state = enforceBounds(readFields(raw, problems), limits);
  return { state, problems, sourceVersion: version as number };
}

function unreadable(problem: string): ParsedState {
  return { state: emptyState(), problems: [problem], sourceVersion: undefined };
}

/** Every field this version knows, each read by its collection; problems are reported in field order. */
function readFields(raw: Fields, problems: string[]): AgentLedgerState {
  const list = <T>(field: string, read: (v: Fields) => T | undefined): T[] => readList(raw, field, read, problems);
  return {
    version: LEDGER_STATE_VERSION,
    held: list('held', readHeldRequest),
    episodeKeys: list('episodeKeys', readEpisodeKey),
    provenance: list('provenance', readProvenance),
    reservations: list('reservations', readReservation),
    rate: byMinute(list('rate', readMinuteBucket)),
    losses: list('losses', readLoss),
    lossBuckets: byMinute(list('lossBuckets', readMinuteBucket)),
    evictions: readEvictions(raw.evictions),
    ...readRiskFields(raw, problems),
    ...readJustification(raw.justification, problems),
    ...readLeases(list('leases', readLease)),
  };
}

/** The leases field, absent when there are none (the form a state without leases is written in). */
function readLeases(leases: Lease[]): { leases?: readonly Lease[] } {
  return leases.length === 0 ? {} : { leases };
}

/** The eviction counts; a count that is missing or unreadable reads as 0. */
function readEvictions(v: unknown): Readonly<Record<LedgerCollection, number>> {
  const evictions: Record<LedgerCollection, number> = { ...NO_EVICTIONS };
  if (isObject(v)) {
    for (const c of LEDGER_COLLECTIONS) {
      const n = v[c];
      if (isCount(n, Number.MAX_SAFE_INTEGER)) evictions[c] = n;
    }
  }
  return evictions;
}
