import { addEpisodeSums, type EpisodeSums, NO_EPISODES, type RiskOptions, type RiskReport, riskOf } from '../risk.ts';
import { appendCapped, bucketInWindow, capOldest, keepSame, minuteOf, msOf, orAbsent } from './collection-helpers.ts';
import { compactId } from './compact-id.ts';
import { addEpisodeBucket, checkSums, mergeSameMinute, readEpisodeBucket } from './episode-bucket.ts';
// The one import of a collection from another: an episode's sums are recorded exactly
// when its key is new, so the two must be decided by the same call.
import { recordEpisodeKey } from './episode-keys.ts';
import { boundsOf, count, type LedgerBounds, type LedgerLimits } from './limits.ts';
import { byMinute, type Fields, isCount, isId, isObject, isTime, readList } from './read-fields.ts';
import type { AgentLedgerState, EpisodeBucket, FamilySnapshot, WorkloadNeed } from './state.ts';

/**
 * The risk metrics' part of the state: per-minute episode sums, the family's size at the
 * latest episode and the latest need of each workload judged. All three are optional
 * fields, absent when empty (see state.ts for why).
 */

/**
 * Records an episode key and, only when it is new, the episode's sums in the bucket of
 * this minute: the mutating call's twin, the apiserver's retries and an agent's retry
 * loop find the key and add nothing, so they can never inflate E, O or AOC. `sums` comes
 * from `episodeSums` (core/risk.ts) with the tolerance in force; the counts must be whole
 * numbers (instances).
 */
export function recordEpisodeOnce(
  state: AgentLedgerState,
  key: string,
  sums: EpisodeSums,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly isNew: boolean } {
  const recorded = recordEpisodeKey(state, key, now, limits);
  if (!recorded.isNew) return recorded;
  checkSums(sums);
  const buckets = addEpisodeBucket(recorded.state.episodeBuckets ?? [], minuteOf(msOf(now)), sums, boundsOf(limits).episodeBuckets);
  return { state: { ...recorded.state, episodeBuckets: buckets }, isNew: true };
}

/**
 * The sums of the episodes recorded within the window ending at `now` (whole minutes,
 * rounded outward like the rate). Sums of per-minute sums: the same numbers a sum over
 * the episodes themselves gives (core/risk.ts explains why that is enough for the ratios).
 */
export function episodeSumsWithin(state: AgentLedgerState, windowMs: number, now: Date): EpisodeSums {
  const from = msOf(now) - windowMs;
  const to = minuteOf(msOf(now));
  let sums = NO_EPISODES;
  for (const b of state.episodeBuckets ?? []) {
    if (bucketInWindow(b, from) && b.minute <= to) sums = addEpisodeSums(sums, b);
  }
  return sums;
}

/** OR, AOC, SR, AOC_norm and ΦR of the agent over the window ending at `now`. */
export function riskWithin(
  state: AgentLedgerState,
  windowMs: number,
  now: Date,
  options: Pick<RiskOptions, 'alpha' | 'beta' | 'normalisation'>,
): RiskReport {
  return riskOf(episodeSumsWithin(state, windowMs, now), options);
}

/** What a decision saw of the family when it recorded an episode. */
export interface FamilyObservation {
  /** Potential instances of the whole family after the decision. */
  readonly instances: number;
  /** The workload judged and its measured need; absent when the need was not measured. */
  readonly workload?: string | undefined;
  readonly need?: number | undefined;
}

/**
 * Keeps the family's size as the decision that recorded the latest episode saw it, and
 * the need it measured for the workload, replacing that workload's previous need.
 */
export function recordFamily(state: AgentLedgerState, seen: FamilyObservation, now: Date, limits: LedgerLimits): AgentLedgerState {
  const t = msOf(now);
  const family: FamilySnapshot = { instances: count(seen.instances, 'instances'), at: t };
  let workloadNeeds = state.workloadNeeds;
  if (seen.workload !== undefined && seen.need !== undefined) {
    const id = compactId(seen.workload);
    const rest = (workloadNeeds ?? []).filter((w) => w.workload !== id);
    workloadNeeds = appendCapped(rest, { workload: id, need: count(seen.need, 'need'), at: t }, boundsOf(limits).workloadNeeds, () => true).kept;
  }
  return { ...state, family, workloadNeeds };
}

/**
 * The family's size and need over the window ending at `now`: the potential instances
 * at the latest episode within it, and the sum of the latest need of each workload an
 * episode judged within it. Undefined when no episode within the window saw the family.
 */
export function familyWithin(
  state: AgentLedgerState,
  windowMs: number,
  now: Date,
): { readonly instances: number; readonly need: number } | undefined {
  const from = msOf(now) - windowMs;
  if (!state.family || state.family.at < from) return undefined;
  let need = 0;
  for (const w of state.workloadNeeds ?? []) if (w.at >= from) need += w.need;
  return { instances: state.family.instances, need };
}

/** Drops episode buckets, the family snapshot and workload needs past the metrics window. */
export function expireRisk(state: AgentLedgerState, cutoff: number): AgentLedgerState {
  const buckets = state.episodeBuckets && orAbsent(keepSame(state.episodeBuckets, (b) => bucketInWindow(b, cutoff)));
  const needs = state.workloadNeeds && orAbsent(keepSame(state.workloadNeeds, (w) => w.at >= cutoff));
  const familyGone = state.family !== undefined && state.family.at < cutoff;
  if (buckets === state.episodeBuckets && needs === state.workloadNeeds && !familyGone) return state;
  return { ...state, episodeBuckets: buckets, workloadNeeds: needs, family: familyGone ? undefined : state.family };
}

/** Keeps the newest episode buckets and workload needs within their bounds (not counted as evictions). */
export function capRisk(state: AgentLedgerState, b: LedgerBounds): AgentLedgerState {
  const buckets = state.episodeBuckets && capOldest(state.episodeBuckets, b.episodeBuckets, () => true).kept;
  const needs = state.workloadNeeds && capOldest(state.workloadNeeds, b.workloadNeeds, () => true).kept;
  if (buckets === state.episodeBuckets && needs === state.workloadNeeds) return state;
  return { ...state, episodeBuckets: buckets, workloadNeeds: needs };
}

/** The risk fields that hold something, for writing and for building a parsed state. */
export function riskFields(state: Pick<AgentLedgerState, 'episodeBuckets' | 'family' | 'workloadNeeds'>): Partial<AgentLedgerState> {
  const out: { episodeBuckets?: readonly EpisodeBucket[]; family?: FamilySnapshot; workloadNeeds?: readonly WorkloadNeed[] } = {};
  if (state.episodeBuckets && state.episodeBuckets.length > 0) out.episodeBuckets = state.episodeBuckets;
  if (state.family) out.family = state.family;
  if (state.workloadNeeds && state.workloadNeeds.length > 0) out.workloadNeeds = state.workloadNeeds;
  return out;
}

/**
 * The risk fields of a serialised state, in the order their problems are reported:
 * episode buckets (two of one minute merged), workload needs, then the family.
 */
export function readRiskFields(raw: Fields, problems: string[]): Partial<AgentLedgerState> {
  const episodeBuckets = byMinute(readList(raw, 'episodeBuckets', readEpisodeBucket, problems));
  const workloadNeeds = readList(raw, 'workloadNeeds', readWorkloadNeed, problems);
  const family = readFamily(raw.family, problems);
  return riskFields({ episodeBuckets: mergeSameMinute(episodeBuckets), family, workloadNeeds });
}

function readWorkloadNeed(v: Fields): WorkloadNeed | undefined {
  return isId(v.workload) && isCount(v.need) && isTime(v.at) ? { workload: v.workload, need: v.need, at: v.at } : undefined;
}

function readFamily(f: unknown, problems: string[]): FamilySnapshot | undefined {
  if (f === undefined) return undefined;
  if (isObject(f) && isCount(f.instances, Number.MAX_SAFE_INTEGER) && isTime(f.at)) return { instances: f.instances, at: f.at };
  problems.push('family: unreadable; ignored');
  return undefined;
}
