import { hash } from 'node:crypto';
import { CarriedIndex } from './carried-index.ts';
import { addEpisodeSums, type BasisSums, type EpisodeSums, NO_EPISODES, type RiskOptions, type RiskReport, riskOf } from './risk.ts';

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

/** The longest window the ledger keeps buckets for: 24 h of one-minute buckets. */
export const MAX_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * The longest metrics window the episode buckets cover: 6 h of one-minute buckets. An
 * episode bucket is the largest entry of the state (ten numbers); 360 of them fit in the
 * size bound next to everything else, 1440 would not. Longer windows are for the
 * recording rules, which work from the counters.
 */
export const MAX_METRICS_WINDOW_MS = 6 * 60 * 60 * 1000;

const MINUTE_MS = 60_000;
/** Replica counts are int32 in the Kubernetes API; larger inputs are a bug upstream. */
const MAX_COUNT = 2_147_483_647;
/** The largest time a JavaScript Date can hold. */
const MAX_TIME_MS = 8.64e15;

/**
 * Caps per collection. Chosen so that the worst case (every collection full, the longest
 * identifiers, the largest numbers) serialises under 512 KiB: half a ConfigMap's 1 MiB,
 * leaving room for metadata and a future format version. The test checks the worst case.
 */
export interface LedgerBounds {
  readonly held: number;
  readonly episodeKeys: number;
  readonly provenance: number;
  readonly reservations: number;
  /** One-minute buckets, for the rate and for losses each. */
  readonly buckets: number;
  readonly losses: number;
  /** One-minute episode buckets of the risk metrics. */
  readonly episodeBuckets: number;
  /** Workloads whose latest need is kept for the family's need. */
  readonly workloadNeeds: number;
}

export const LEDGER_BOUNDS: LedgerBounds = {
  held: 500,
  episodeKeys: 1000,
  provenance: 500,
  reservations: 200,
  buckets: MAX_WINDOW_MS / MINUTE_MS,
  losses: 500,
  episodeBuckets: MAX_METRICS_WINDOW_MS / MINUTE_MS,
  workloadNeeds: 50,
};

/** The windows and bounds the pure functions work with. */
export interface LedgerLimits {
  /** The metrics window: episode keys and held requests are remembered this long (default 1 h). */
  readonly windowMs: number;
  /**
   * The longest rate or survival-pressure window in use: rate and loss buckets and loss
   * records are kept this long. Clamped to {@link MAX_WINDOW_MS}.
   */
  readonly maxWindowMs: number;
  /**
   * How long an admitted growth stays reserved while waiting for the cluster view to
   * show it. Must exceed the view's worst lag (its maxStaleness), or a growth that did
   * happen is released before it is confirmed and stops counting toward the rate.
   */
  readonly reservationTtlMs: number;
  /** Lower caps (tests); values above {@link LEDGER_BOUNDS} are clamped to keep the size bound. */
  readonly bounds?: Partial<LedgerBounds> | undefined;
}

export const DEFAULT_LEDGER_LIMITS: LedgerLimits = {
  windowMs: 60 * 60 * 1000,
  maxWindowMs: MAX_WINDOW_MS,
  reservationTtlMs: 2 * 60 * 1000,
};

/** The collections whose entries can be evicted by a bound (for metrics). */
export type LedgerCollection = 'held' | 'episodeKeys' | 'provenance' | 'reservations' | 'rate' | 'losses';

export const LEDGER_COLLECTIONS: readonly LedgerCollection[] = [
  'held',
  'episodeKeys',
  'provenance',
  'reservations',
  'rate',
  'losses',
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
}

/** The hash of the justification of the family's last recorded growth, and when it was recorded. */
export interface JustificationRecord {
  readonly hash: string;
  readonly at: number;
}

const NO_EVICTIONS: Readonly<Record<LedgerCollection, number>> = {
  held: 0,
  episodeKeys: 0,
  provenance: 0,
  reservations: 0,
  rate: 0,
  losses: 0,
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
    state.justification === undefined
  );
}

// ---- identifiers -----------------------------------------------------------------------

const SAFE_ID = /^[A-Za-z0-9._-]{1,40}$/;
const HASHED_ID = /^#[A-Za-z0-9_-]{22}$/;

/**
 * How an identifier is stored: short safe strings (Kubernetes UIDs) as they are, anything
 * else (episode keys, which embed the agent's name and the workload's path) as `#` and
 * 22 characters of its SHA-256 (132 bits). That bounds every entry's size whatever the
 * input, which the 1 MiB ConfigMap limit needs, and no JSON escaping can inflate it.
 *
 * Idempotent: a stored id comes back as it is, so that a caller can hash a key once per
 * request and pass the result to every function here (each hash costs microseconds on
 * the request path). No key this code builds starts with `#` (episode keys are JSON
 * arrays, workload keys contain `/`), so an unhashed id never passes for a hashed one.
 */
export function compactId(id: string): string {
  if (SAFE_ID.test(id) || HASHED_ID.test(id)) return id;
  return `#${hash('sha256', id, 'base64url').slice(0, 22)}`;
}

// ---- limits ----------------------------------------------------------------------------

/** Bounds derived from a limits object, once: every mutator asks, several times per decision. */
const boundsCache = new WeakMap<LedgerLimits, LedgerBounds>();

function boundsOf(limits: LedgerLimits): LedgerBounds {
  let bounds = boundsCache.get(limits);
  if (bounds === undefined) {
    bounds = computeBounds(limits);
    boundsCache.set(limits, bounds);
  }
  return bounds;
}

function computeBounds(limits: LedgerLimits): LedgerBounds {
  const b = limits.bounds ?? {};
  const pick = (name: keyof LedgerBounds) => Math.max(1, Math.min(LEDGER_BOUNDS[name], b[name] ?? LEDGER_BOUNDS[name]));
  return {
    held: pick('held'),
    episodeKeys: pick('episodeKeys'),
    provenance: pick('provenance'),
    reservations: pick('reservations'),
    buckets: pick('buckets'),
    losses: pick('losses'),
    episodeBuckets: pick('episodeBuckets'),
    workloadNeeds: pick('workloadNeeds'),
  };
}

function maxWindowOf(limits: LedgerLimits): number {
  return Math.min(MAX_WINDOW_MS, limits.maxWindowMs);
}

function count(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_COUNT) {
    throw new RangeError(`${what} must be a whole number from 0 to ${MAX_COUNT}, got ${value}`);
  }
  return value;
}

const msOf = (now: Date): number => now.getTime();
const minuteOf = (ms: number): number => Math.floor(ms / MINUTE_MS);
/** A bucket counts toward a window when any part of its minute lies inside it: the rounding errs strict. */
const bucketInWindow = (b: { readonly minute: number }, from: number): boolean => (b.minute + 1) * MINUTE_MS > from;

// ---- small immutable helpers --------------------------------------------------------------

/** `items.filter(keep)`, but the same array when nothing is dropped. */
function keepSame<T>(items: readonly T[], keep: (item: T) => boolean): readonly T[] {
  let out: T[] | undefined;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as T;
    if (keep(item)) {
      out?.push(item);
    } else if (!out) {
      out = items.slice(0, i);
    }
  }
  return out ?? items;
}

/**
 * `keepSame(items, (e) => e.at >= cutoff)` as a plain loop: every decision expires up to
 * a thousand episode keys, and a comparison inlined here costs a fraction of a call
 * through a predicate shared by every collection.
 */
function keepSince<T extends { readonly at: number }>(items: readonly T[], cutoff: number): readonly T[] {
  let i = 0;
  while (i < items.length && (items[i] as T).at >= cutoff) i++;
  if (i === items.length) return items;
  const out = items.slice(0, i);
  for (i++; i < items.length; i++) {
    const item = items[i] as T;
    if (item.at >= cutoff) out.push(item);
  }
  return out;
}

/**
 * Drops the oldest entries beyond `cap`; returns the kept ones and how many of the dropped
 * were still live (those are evictions; dropping an expired one is not).
 */
function capOldest<T>(items: readonly T[], cap: number, live: (item: T) => boolean): { kept: readonly T[]; evicted: number } {
  if (items.length <= cap) return { kept: items, evicted: 0 };
  const dropped = items.slice(0, items.length - cap);
  return { kept: items.slice(items.length - cap), evicted: dropped.filter(live).length };
}

/**
 * `capOldest([...items, item], cap, live)` without building the longer array first: on
 * the request path these collections hold up to a thousand entries, and a spread of
 * that size followed by a slice is most of what recording one entry costs.
 */
function appendCapped<T>(items: readonly T[], item: T, cap: number, live: (item: T) => boolean): { kept: readonly T[]; evicted: number } {
  const drop = Math.max(0, items.length + 1 - cap);
  let evicted = 0;
  for (let i = 0; i < drop && i < items.length; i++) if (live(items[i] as T)) evicted++;
  const kept = drop === 0 ? items.slice() : items.slice(drop);
  // A cap smaller than one leaves no room; boundsOf keeps every cap at 1 or more.
  if (kept.length < cap) kept.push(item);
  else evicted += live(item) ? 1 : 0;
  return { kept, evicted };
}

function bump(
  evictions: Readonly<Record<LedgerCollection, number>>,
  collection: LedgerCollection,
  n: number,
): Readonly<Record<LedgerCollection, number>> {
  if (n === 0) return evictions;
  return { ...evictions, [collection]: Math.min(Number.MAX_SAFE_INTEGER, evictions[collection] + n) };
}

/** Adds to the bucket of `minute`, keeping buckets sorted by minute; caps by dropping the oldest. */
function addToBuckets(
  buckets: readonly MinuteBucket[],
  minute: number,
  instances: number,
  cap: number,
): { buckets: readonly MinuteBucket[]; evicted: number } {
  if (instances === 0) return { buckets, evicted: 0 };
  const out = buckets.slice();
  let i = out.length;
  while (i > 0 && (out[i - 1] as MinuteBucket).minute > minute) i--;
  const at = out[i - 1];
  if (at && at.minute === minute) {
    out[i - 1] = { minute, instances: Math.min(Number.MAX_SAFE_INTEGER, at.instances + instances) };
  } else {
    out.splice(i, 0, { minute, instances });
  }
  const { kept, evicted } = capOldest(out, cap, () => true);
  return { buckets: kept, evicted };
}

// ---- expiry ----------------------------------------------------------------------------

/**
 * Drops what time has made irrelevant: held requests and episode keys past the metrics
 * window, rate and loss buckets and loss records past the longest window in use, and
 * reservations past their timeout (released: the view never showed them). Provenance
 * does not expire with time: a workload stays in the family while it exists; use
 * {@link forgetProvenance} when the view sees it deleted.
 */
export function expire(state: AgentLedgerState, now: Date, limits: LedgerLimits): AgentLedgerState {
  const t = msOf(now);
  const cutoff = t - limits.windowMs;
  const longCutoff = t - maxWindowOf(limits);
  const held = keepSince(state.held, cutoff);
  const episodeKeys = keepSince(state.episodeKeys, cutoff);
  if (episodeKeys !== state.episodeKeys) {
    episodeKeyIndex.carry(state.episodeKeys, episodeKeys, state.episodeKeys.filter((e) => e.at < cutoff), []);
  }
  const reservations = keepSame(state.reservations, (r) => r.expiresAt > t);
  const rate = keepSame(state.rate, (b) => bucketInWindow(b, longCutoff));
  const losses = keepSince(state.losses, longCutoff);
  const lossBuckets = keepSame(state.lossBuckets, (b) => bucketInWindow(b, longCutoff));
  const expired = expireRisk(state, cutoff);
  if (
    held === state.held &&
    episodeKeys === state.episodeKeys &&
    reservations === state.reservations &&
    rate === state.rate &&
    losses === state.losses &&
    lossBuckets === state.lossBuckets &&
    expired === state
  ) {
    return state;
  }
  return { ...expired, held, episodeKeys, reservations, rate, losses, lossBuckets };
}

// ---- held requests -------------------------------------------------------------------------

/**
 * Keeps the agent's requested count under the episode key, unless one is already kept
 * within the window: a reinvocation of the mutating webhook sees the count it clamped
 * and must never overwrite the agent's own.
 */
export function holdRequested(
  state: AgentLedgerState,
  key: string,
  requested: number,
  now: Date,
  limits: LedgerLimits,
): AgentLedgerState {
  const k = compactId(key);
  const t = msOf(now);
  const cutoff = t - limits.windowMs;
  const existing = state.held.find((h) => h.key === k);
  if (existing && existing.at >= cutoff) return state;
  const rest = existing ? state.held.filter((h) => h !== existing) : state.held;
  const { kept, evicted } = appendCapped(
    rest,
    { key: k, requested: count(requested, 'requested'), at: t },
    boundsOf(limits).held,
    (h) => h.at >= cutoff,
  );
  return { ...state, held: kept, evictions: bump(state.evictions, 'held', evicted) };
}

/** The requested count held under the key within the window, if any. */
export function requestedFor(state: AgentLedgerState, key: string, now: Date, limits: LedgerLimits): number | undefined {
  const k = compactId(key);
  const cutoff = msOf(now) - limits.windowMs;
  const h = state.held.find((e) => e.key === k);
  return h && h.at >= cutoff ? h.requested : undefined;
}

// ---- episode keys ----------------------------------------------------------------------------

/** Episode keys by key: every decision looks one up among up to a thousand. */
const episodeKeyIndex = new CarriedIndex<EpisodeKeyEntry>((e) => e.key);

/**
 * Records an episode key once within the window. `isNew` is false for the mutating call's
 * twin, a reinvocation, the apiserver's retries and an agent's retry loop. Past the bound
 * the oldest key is dropped and counted: the same episode seen again then counts twice.
 */
export function recordEpisodeKey(
  state: AgentLedgerState,
  key: string,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly isNew: boolean } {
  const k = compactId(key);
  const t = msOf(now);
  const cutoff = t - limits.windowMs;
  const existing = episodeKeyIndex.get(state.episodeKeys, k);
  if (existing && existing.at >= cutoff) return { state, isNew: false };
  const rest = existing ? state.episodeKeys.filter((e) => e !== existing) : state.episodeKeys;
  const entry = { key: k, at: t };
  const { kept, evicted } = appendCapped(rest, entry, boundsOf(limits).episodeKeys, (e) => e.at >= cutoff);
  const dropped = rest.slice(0, rest.length + 1 - kept.length);
  episodeKeyIndex.carry(state.episodeKeys, kept, existing ? [existing, ...dropped] : dropped, [entry]);
  return { state: { ...state, episodeKeys: kept, evictions: bump(state.evictions, 'episodeKeys', evicted) }, isNew: true };
}

/** Whether the key was recorded within the window. */
export function hasEpisodeKey(state: AgentLedgerState, key: string, now: Date, limits: LedgerLimits): boolean {
  const k = compactId(key);
  const cutoff = msOf(now) - limits.windowMs;
  const entry = episodeKeyIndex.get(state.episodeKeys, k);
  return entry !== undefined && entry.at >= cutoff;
}

// ---- provenance --------------------------------------------------------------------------------

/**
 * Marks a workload (by UID) as created or scaled up by the agent, or refreshes the time it
 * was last seen. Past the bound the least recently seen is dropped and counted.
 */
export function addProvenance(state: AgentLedgerState, uid: string, now: Date, limits: LedgerLimits): AgentLedgerState {
  const id = compactId(uid);
  const t = msOf(now);
  const last = state.provenance.at(-1);
  if (last && last.uid === id && last.at >= t) return state;
  const rest = keepSame(state.provenance, (p) => p.uid !== id);
  const { kept, evicted } = appendCapped(rest, { uid: id, at: t }, boundsOf(limits).provenance, () => true);
  return { ...state, provenance: kept, evictions: bump(state.evictions, 'provenance', evicted) };
}

export function hasProvenance(state: AgentLedgerState, uid: string): boolean {
  const id = compactId(uid);
  return state.provenance.some((p) => p.uid === id);
}

/**
 * Forgets every workload the view saw deleted (`gone` answers per stored UID). A UID is
 * never reused, so a dead entry only takes the place of a live one in the bounded list:
 * an agent that creates and deletes many workloads would otherwise push its live ones
 * out of its family.
 */
export function forgetGoneProvenance(state: AgentLedgerState, gone: (uid: string) => boolean): AgentLedgerState {
  const provenance = keepSame(state.provenance, (p) => !gone(p.uid));
  return provenance === state.provenance ? state : { ...state, provenance };
}

/** Forgets a workload the view saw deleted. */
export function forgetProvenance(state: AgentLedgerState, uid: string): AgentLedgerState {
  const id = compactId(uid);
  const provenance = keepSame(state.provenance, (p) => p.uid !== id);
  return provenance === state.provenance ? state : { ...state, provenance };
}

// ---- reservations ----------------------------------------------------------------------------------

/** What a caller reserves; the time and the timeout are added from `now` and the limits. */
export interface ReservationRequest {
  readonly key: string;
  readonly workload: string;
  readonly steady: number;
  readonly addedInstances: number;
}

/**
 * Reserves admitted growth until the view confirms it. Idempotent per episode key: the
 * apiserver may call the validating webhook again for the same request. Past the bound
 * the oldest reservation is not dropped but charged to the rate as if confirmed (the
 * strict side: dropping it would hand its instances back to the agent).
 */
export function reserve(state: AgentLedgerState, request: ReservationRequest, now: Date, limits: LedgerLimits): AgentLedgerState {
  const key = compactId(request.key);
  const t = msOf(now);
  if (state.reservations.some((r) => r.key === key && r.expiresAt > t)) return state;
  const reservation: Reservation = {
    key,
    workload: compactId(request.workload),
    steady: count(request.steady, 'steady'),
    addedInstances: count(request.addedInstances, 'addedInstances'),
    at: t,
    expiresAt: t + limits.reservationTtlMs,
  };
  const all = [...state.reservations.filter((r) => r.key !== key), reservation];
  return capReservations({ ...state, reservations: all }, boundsOf(limits), t);
}

/**
 * Keeps the newest reservations within the bound. The dropped ones are charged to the
 * rate as if confirmed (the strict side: dropping them would hand their instances back
 * to the agent); only the ones still pending count as evictions.
 */
function capReservations(state: AgentLedgerState, bounds: LedgerBounds, t: number): AgentLedgerState {
  const all = state.reservations;
  if (all.length <= bounds.reservations) return state;
  const overflow = all.slice(0, all.length - bounds.reservations);
  let rate = state.rate;
  let rateEvicted = 0;
  let live = 0;
  for (const r of overflow) {
    if (r.expiresAt <= t) continue;
    live++;
    const added = addToBuckets(rate, minuteOf(r.at), r.addedInstances, bounds.buckets);
    rate = added.buckets;
    rateEvicted += added.evicted;
  }
  return {
    ...state,
    reservations: all.slice(all.length - bounds.reservations),
    rate,
    evictions: bump(bump(state.evictions, 'reservations', live), 'rate', rateEvicted),
  };
}

function confirmAll(
  state: AgentLedgerState,
  match: (r: Reservation) => boolean,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly confirmed: number } {
  const t = msOf(now);
  const hits = state.reservations.filter((r) => r.expiresAt > t && match(r));
  if (hits.length === 0) return { state, confirmed: 0 };
  const cap = boundsOf(limits).buckets;
  let rate = state.rate;
  let evicted = 0;
  for (const r of hits) {
    // Charged to the minute the growth was admitted, so that the window measures when
    // the agent grew, not when the view caught up; rateUsed is unchanged by confirming.
    const added = addToBuckets(rate, minuteOf(r.at), r.addedInstances, cap);
    rate = added.buckets;
    evicted += added.evicted;
  }
  const reservations = state.reservations.filter((r) => !hits.includes(r));
  return {
    state: { ...state, reservations, rate, evictions: bump(state.evictions, 'rate', evicted) },
    confirmed: hits.length,
  };
}

/** Confirms the reservation of an episode key: the growth happened; it now counts in the rate buckets. */
export function confirmReservation(
  state: AgentLedgerState,
  key: string,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly confirmed: boolean } {
  const k = compactId(key);
  const out = confirmAll(state, (r) => r.key === k, now, limits);
  return { state: out.state, confirmed: out.confirmed > 0 };
}

/**
 * Confirms every reservation of a workload that the view now shows at `steady` or more.
 * Pass every identifier the workload had: its UID and, for a CREATE reserved before the
 * UID existed, its group/kind/namespace/name (as `workloadKeyOf` builds them).
 */
export function confirmObserved(
  state: AgentLedgerState,
  workloadIds: readonly string[],
  steady: number,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly confirmed: number } {
  const ids = new Set(workloadIds.map(compactId));
  return confirmAll(state, (r) => ids.has(r.workload) && r.steady <= steady, now, limits);
}

/** Releases reservations past their timeout: the view never showed them, so they did not happen. */
export function releaseExpired(
  state: AgentLedgerState,
  now: Date,
): { readonly state: AgentLedgerState; readonly released: readonly Reservation[] } {
  const t = msOf(now);
  const reservations = keepSame(state.reservations, (r) => r.expiresAt > t);
  if (reservations === state.reservations) return { state, released: [] };
  return { state: { ...state, reservations }, released: state.reservations.filter((r) => r.expiresAt <= t) };
}

/**
 * Instances not yet visible in the cluster view: pending reservations, of every workload
 * or of the given workload identifiers. With `now`, reservations past their timeout are
 * left out even before {@link expire} removes them.
 */
export function reservedInstances(state: AgentLedgerState, now?: Date, workloadIds?: readonly string[]): number {
  const t = now ? msOf(now) : Number.NEGATIVE_INFINITY;
  const ids = workloadIds ? new Set(workloadIds.map(compactId)) : undefined;
  let sum = 0;
  for (const r of state.reservations) {
    if (r.expiresAt > t && (!ids || ids.has(r.workload))) sum += r.addedInstances;
  }
  return sum;
}

/**
 * Instances the family added within the window ending at `now`: confirmed growth from
 * the buckets (whole minutes, rounded outward: the limit errs strict) plus pending
 * reservations admitted within the window. This is what a rate limit spends.
 */
export function rateUsed(state: AgentLedgerState, windowMs: number, now: Date): number {
  const t = msOf(now);
  const from = t - windowMs;
  let sum = 0;
  for (const b of state.rate) if (bucketInWindow(b, from)) sum += b.instances;
  for (const r of state.reservations) if (r.expiresAt > t && r.at >= from) sum += r.addedInstances;
  return sum;
}

// ---- losses ------------------------------------------------------------------------------------------

/**
 * Records a loss once per pod UID (or any stable identifier of the loss event). `at` is
 * when the loss happened as the view saw it, not when it was noticed again after a
 * re-list: a loss older than the longest window is ignored, so that a UID forgotten after
 * the window cannot come back as a fresh loss.
 */
export function recordLoss(
  state: AgentLedgerState,
  uid: string,
  at: Date,
  now: Date,
  limits: LedgerLimits,
  instances = 1,
): { readonly state: AgentLedgerState; readonly isNew: boolean } {
  const id = compactId(uid);
  const when = msOf(at);
  const longCutoff = msOf(now) - maxWindowOf(limits);
  if (when < longCutoff || state.losses.some((l) => l.uid === id)) return { state, isNew: false };
  const bounds = boundsOf(limits);
  const { kept, evicted } = appendCapped(state.losses, { uid: id, at: when }, bounds.losses, (l) => l.at >= longCutoff);
  const added = addToBuckets(state.lossBuckets, minuteOf(when), count(instances, 'instances'), bounds.buckets);
  return {
    state: {
      ...state,
      losses: kept,
      lossBuckets: added.buckets,
      evictions: bump(state.evictions, 'losses', evicted + added.evicted),
    },
    isNew: true,
  };
}

/** Instances the family lost within the window ending at `now` (whole minutes, rounded outward). */
export function lossesWithin(state: AgentLedgerState, windowMs: number, now: Date): number {
  const from = msOf(now) - windowMs;
  let sum = 0;
  for (const b of state.lossBuckets) if (bucketInWindow(b, from)) sum += b.instances;
  return sum;
}

// ---- risk metrics ----------------------------------------------------------------------------

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

function checkSums(sums: EpisodeSums): void {
  const whole = (v: number, what: string) => {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`episode ${what} must be a whole number of 0 or more, got ${v}`);
  };
  whole(sums.measured, 'count');
  whole(sums.needSum, 'need');
  whole(sums.fallback, 'fallback count');
  whole(sums.unmeasured, 'unmeasured count');
  for (const b of [sums.requested, sums.admitted]) {
    whole(b.overuse, 'overuse');
    whole(b.growth, 'growth');
    whole(b.surplus, 'surplus');
  }
}

const capped = (a: number, b: number): number => Math.min(Number.MAX_SAFE_INTEGER, a + b);
const addBasisCapped = (a: BasisSums, b: BasisSums): BasisSums => ({
  overuse: capped(a.overuse, b.overuse),
  growth: capped(a.growth, b.growth),
  surplus: capped(a.surplus, b.surplus),
});

function bucketOf(minute: number, sums: EpisodeSums): EpisodeBucket {
  return {
    minute,
    measured: sums.measured,
    needSum: sums.needSum,
    fallback: sums.fallback,
    unmeasured: sums.unmeasured,
    requested: { overuse: sums.requested.overuse, growth: sums.requested.growth, surplus: sums.requested.surplus },
    admitted: { overuse: sums.admitted.overuse, growth: sums.admitted.growth, surplus: sums.admitted.surplus },
  };
}

function mergeBucket(a: EpisodeBucket, sums: EpisodeSums): EpisodeBucket {
  return {
    minute: a.minute,
    measured: capped(a.measured, sums.measured),
    needSum: capped(a.needSum, sums.needSum),
    fallback: capped(a.fallback, sums.fallback),
    unmeasured: capped(a.unmeasured, sums.unmeasured),
    requested: addBasisCapped(a.requested, sums.requested),
    admitted: addBasisCapped(a.admitted, sums.admitted),
  };
}

/** Adds to the bucket of `minute`, keeping buckets sorted by minute; caps by dropping the oldest. */
function addEpisodeBucket(buckets: readonly EpisodeBucket[], minute: number, sums: EpisodeSums, cap: number): readonly EpisodeBucket[] {
  const out = buckets.slice();
  let i = out.length;
  while (i > 0 && (out[i - 1] as EpisodeBucket).minute > minute) i--;
  const at = out[i - 1];
  if (at && at.minute === minute) out[i - 1] = mergeBucket(at, sums);
  else out.splice(i, 0, bucketOf(minute, sums));
  // The metrics window is at most MAX_METRICS_WINDOW_MS, which the cap covers: what it
  // drops lies outside every window a gauge is computed over.
  return capOldest(out, cap, () => true).kept;
}

/** Buckets sorted by minute with one per minute (input from elsewhere may repeat one). */
function mergeSameMinute(buckets: readonly EpisodeBucket[]): readonly EpisodeBucket[] {
  const out: EpisodeBucket[] = [];
  for (const b of buckets) {
    const last = out[out.length - 1];
    if (last && last.minute === b.minute) out[out.length - 1] = mergeBucket(last, b);
    else out.push(b);
  }
  return out;
}

/** Drops episode buckets, the family snapshot and workload needs past the metrics window. */
function expireRisk(state: AgentLedgerState, cutoff: number): AgentLedgerState {
  const buckets = state.episodeBuckets && orAbsent(keepSame(state.episodeBuckets, (b) => bucketInWindow(b, cutoff)));
  const needs = state.workloadNeeds && orAbsent(keepSame(state.workloadNeeds, (w) => w.at >= cutoff));
  const familyGone = state.family !== undefined && state.family.at < cutoff;
  if (buckets === state.episodeBuckets && needs === state.workloadNeeds && !familyGone) return state;
  return { ...state, episodeBuckets: buckets, workloadNeeds: needs, family: familyGone ? undefined : state.family };
}

/** An emptied optional collection is left absent, so that it reads back (and compares) as it was written. */
function orAbsent<T>(items: readonly T[]): readonly T[] | undefined {
  return items.length === 0 ? undefined : items;
}

function capRisk(state: AgentLedgerState, b: LedgerBounds): AgentLedgerState {
  const buckets = state.episodeBuckets && capOldest(state.episodeBuckets, b.episodeBuckets, () => true).kept;
  const needs = state.workloadNeeds && capOldest(state.workloadNeeds, b.workloadNeeds, () => true).kept;
  if (buckets === state.episodeBuckets && needs === state.workloadNeeds) return state;
  return { ...state, episodeBuckets: buckets, workloadNeeds: needs };
}

/** The risk fields that hold something, for writing and for building a parsed state. */
function riskFields(state: Pick<AgentLedgerState, 'episodeBuckets' | 'family' | 'workloadNeeds'>): Partial<AgentLedgerState> {
  const out: { episodeBuckets?: readonly EpisodeBucket[]; family?: FamilySnapshot; workloadNeeds?: readonly WorkloadNeed[] } = {};
  if (state.episodeBuckets && state.episodeBuckets.length > 0) out.episodeBuckets = state.episodeBuckets;
  if (state.family) out.family = state.family;
  if (state.workloadNeeds && state.workloadNeeds.length > 0) out.workloadNeeds = state.workloadNeeds;
  return out;
}

function readBasis(v: unknown): BasisSums | undefined {
  if (!isObject(v)) return undefined;
  const { overuse, growth, surplus } = v;
  const n = Number.MAX_SAFE_INTEGER;
  return isCount(overuse, n) && isCount(growth, n) && isCount(surplus, n) ? { overuse, growth, surplus } : undefined;
}

function readEpisodeBucket(v: Fields): EpisodeBucket | undefined {
  const n = Number.MAX_SAFE_INTEGER;
  const requested = readBasis(v.requested);
  const admitted = readBasis(v.admitted);
  if (!requested || !admitted) return undefined;
  if (!isCount(v.minute, MAX_TIME_MS / MINUTE_MS)) return undefined;
  if (!isCount(v.measured, n) || !isCount(v.needSum, n) || !isCount(v.fallback, n) || !isCount(v.unmeasured, n)) return undefined;
  return { minute: v.minute, measured: v.measured, needSum: v.needSum, fallback: v.fallback, unmeasured: v.unmeasured, requested, admitted };
}

// ---- bounds ------------------------------------------------------------------------------------------

/**
 * Applies the caps to a state from elsewhere (a newer guard may use larger ones): keeps
 * the newest entries, counts what is dropped. Mutators already keep their own collection
 * within bounds; this is for parsed input and a final check before a write.
 */
export function enforceBounds(input: AgentLedgerState, limits: LedgerLimits, now?: Date): AgentLedgerState {
  const b = boundsOf(limits);
  // Reservations first: the ones dropped are charged to the rate, which is capped below.
  const state = capReservations(input, b, now ? msOf(now) : Number.NEGATIVE_INFINITY);
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

// ---- serialisation --------------------------------------------------------------------------------------

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
    evictions: state.evictions,
    // Written only when there is something: a state without episodes keeps its exact v1 form.
    ...riskFields(state),
    ...(state.justification ? { justification: state.justification } : {}),
  });
}

/** A parsed state, the problems met on the way (empty when clean) and the version it was written in. */
export interface ParsedState {
  readonly state: AgentLedgerState;
  readonly problems: readonly string[];
  readonly sourceVersion: number | undefined;
}

type Fields = Record<string, unknown>;

const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);
/** What {@link compactId} produces: a short safe string, or `#` and a hash. Part of the format's contract. */
const STORED_ID = /^#?[A-Za-z0-9._-]{1,40}$/;
const isId = (v: unknown): v is string => typeof v === 'string' && STORED_ID.test(v);
const isCount = (v: unknown, max = MAX_COUNT): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max;
const isTime = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_TIME_MS;

/**
 * Reads a serialised state. Accepts version 1 and every newer version: a newer guard may
 * add fields (unknown ones are ignored) but must keep the meaning of the ones here, so
 * that during a rolling upgrade an older guard still reads what it knows; a newer guard
 * reads an older ledger the same way. Entries of the wrong shape are dropped one by one;
 * anything unreadable as a whole gives an empty state. Never throws: a problem is
 * reported, and the caller logs it.
 */
export function parseState(text: string | undefined, limits: LedgerLimits = DEFAULT_LEDGER_LIMITS): ParsedState {
  if (text === undefined || text === '') return { state: EMPTY, problems: [], sourceVersion: undefined };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { state: EMPTY, problems: [`not JSON: ${(err as Error).message}`], sourceVersion: undefined };
  }
  if (!isObject(raw)) return { state: EMPTY, problems: ['not a JSON object'], sourceVersion: undefined };
  const version = raw.version;
  if (!Number.isSafeInteger(version) || (version as number) < 1) {
    return { state: EMPTY, problems: [`unknown ledger version ${JSON.stringify(version)}`], sourceVersion: undefined };
  }
  const problems: string[] = [];
  const list = <T>(field: string, read: (v: Fields) => T | undefined): T[] => {
    const value = raw[field];
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      problems.push(`${field}: not a list; ignored`);
      return [];
    }
    const out: T[] = [];
    let bad = 0;
    for (const item of value) {
      const parsed = isObject(item) ? read(item) : undefined;
      if (parsed === undefined) bad++;
      else out.push(parsed);
    }
    if (bad > 0) problems.push(`${field}: ${bad} unreadable entr${bad === 1 ? 'y' : 'ies'} dropped`);
    return out;
  };
  const held = list<HeldRequest>('held', (v) =>
    isId(v.key) && isCount(v.requested) && isTime(v.at) ? { key: v.key, requested: v.requested, at: v.at } : undefined,
  );
  const episodeKeys = list<EpisodeKeyEntry>('episodeKeys', (v) => (isId(v.key) && isTime(v.at) ? { key: v.key, at: v.at } : undefined));
  const provenance = list<ProvenanceEntry>('provenance', (v) => (isId(v.uid) && isTime(v.at) ? { uid: v.uid, at: v.at } : undefined));
  const reservations = list<Reservation>('reservations', (v) =>
    isId(v.key) && isId(v.workload) && isCount(v.steady) && isCount(v.addedInstances) && isTime(v.at) && isTime(v.expiresAt)
      ? { key: v.key, workload: v.workload, steady: v.steady, addedInstances: v.addedInstances, at: v.at, expiresAt: v.expiresAt }
      : undefined,
  );
  const bucket = (v: Fields): MinuteBucket | undefined =>
    isCount(v.minute, MAX_TIME_MS / MINUTE_MS) && isCount(v.instances, Number.MAX_SAFE_INTEGER)
      ? { minute: v.minute, instances: v.instances }
      : undefined;
  const rate = list<MinuteBucket>('rate', bucket).sort((a, b) => a.minute - b.minute);
  const losses = list<LossEntry>('losses', (v) => (isId(v.uid) && isTime(v.at) ? { uid: v.uid, at: v.at } : undefined));
  const lossBuckets = list<MinuteBucket>('lossBuckets', bucket).sort((a, b) => a.minute - b.minute);
  const evictions: Record<LedgerCollection, number> = { ...NO_EVICTIONS };
  if (isObject(raw.evictions)) {
    for (const c of LEDGER_COLLECTIONS) {
      const n = raw.evictions[c];
      if (isCount(n, Number.MAX_SAFE_INTEGER)) evictions[c] = n;
    }
  }
  const episodeBuckets = list<EpisodeBucket>('episodeBuckets', readEpisodeBucket).sort((a, b) => a.minute - b.minute);
  const workloadNeeds = list<WorkloadNeed>('workloadNeeds', (v) =>
    isId(v.workload) && isCount(v.need) && isTime(v.at) ? { workload: v.workload, need: v.need, at: v.at } : undefined,
  );
  let family: FamilySnapshot | undefined;
  if (raw.family !== undefined) {
    const f = raw.family;
    if (isObject(f) && isCount(f.instances, Number.MAX_SAFE_INTEGER) && isTime(f.at)) family = { instances: f.instances, at: f.at };
    else problems.push('family: unreadable; ignored');
  }
  const state = enforceBounds(
    {
      version: LEDGER_STATE_VERSION,
      held,
      episodeKeys,
      provenance,
      reservations,
      rate,
      losses,
      lossBuckets,
      evictions,
      ...riskFields({ episodeBuckets: mergeSameMinute(episodeBuckets), family, workloadNeeds }),
      ...readJustification(raw.justification, problems),
    },
    limits,
  );
  return { state, problems, sourceVersion: version as number };
}

// ---- justification -------------------------------------------------------------------------------

/** Records the hash of the justification a growth carried (the same object when it is already the latest). */
export function recordJustification(state: AgentLedgerState, hash: string, now: Date): AgentLedgerState {
  if (state.justification?.hash === hash) return state;
  return { ...state, justification: { hash, at: msOf(now) } };
}

function readJustification(v: unknown, problems: string[]): { justification?: JustificationRecord } {
  if (v === undefined) return {};
  if (isObject(v) && typeof v.hash === 'string' && /^[0-9a-f]{1,64}$/.test(v.hash) && isTime(v.at)) return { justification: { hash: v.hash, at: v.at } };
  problems.push('justification: unreadable; ignored');
  return {};
}
