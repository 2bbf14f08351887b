/**
 * The windows and bounds of the ledger state: how long each collection remembers, and
 * how many entries it may hold, so that a state always fits in a ConfigMap.
 */

/** The longest window the ledger keeps buckets for: 24 h of one-minute buckets. */
export const MAX_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * The longest metrics window the episode buckets cover: 6 h of one-minute buckets. An
 * episode bucket is the largest entry of the state (ten numbers); 360 of them fit in the
 * size bound next to everything else, 1440 would not. Longer windows are for the
 * recording rules, which work from the counters.
 */
export const MAX_METRICS_WINDOW_MS = 6 * 60 * 60 * 1000;

/** The length of a bucket: rates, losses and episode sums are kept per epoch minute. */
export const MINUTE_MS = 60_000;
/** Replica counts are int32 in the Kubernetes API; larger inputs are a bug upstream. */
export const MAX_COUNT = 2_147_483_647;
/** The largest time a JavaScript Date can hold. */
export const MAX_TIME_MS = 8.64e15;

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
  /** Allowance leases: one per guard replica deciding for the agent. */
  readonly leases: number;
}

/** The largest caps: the ones the size bound was worked out for. */
export const LEDGER_BOUNDS: LedgerBounds = {
  held: 500,
  episodeKeys: 1000,
  provenance: 500,
  reservations: 200,
  buckets: MAX_WINDOW_MS / MINUTE_MS,
  losses: 500,
  episodeBuckets: MAX_METRICS_WINDOW_MS / MINUTE_MS,
  workloadNeeds: 50,
  leases: 32,
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

/** The limits a guard uses when its configuration names none. */
export const DEFAULT_LEDGER_LIMITS: LedgerLimits = {
  windowMs: 60 * 60 * 1000,
  maxWindowMs: MAX_WINDOW_MS,
  reservationTtlMs: 2 * 60 * 1000,
};

/** Bounds derived from a limits object, once: every mutator asks, several times per decision. */
const boundsCache = new WeakMap<LedgerLimits, LedgerBounds>();

/** The caps in force under `limits`: each clamped to 1 ..{@link LEDGER_BOUNDS}. */
export function boundsOf(limits: LedgerLimits): LedgerBounds {
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
    leases: pick('leases'),
  };
}

/** The longest window in use, clamped to the {@link MAX_WINDOW_MS} the buckets are sized for. */
export function maxWindowOf(limits: LedgerLimits): number {
  return Math.min(MAX_WINDOW_MS, limits.maxWindowMs);
}

/** `value` when it is a count the state may hold; a RangeError naming `what` otherwise. */
export function count(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_COUNT) {
    throw new RangeError(`${what} must be a whole number from 0 to ${MAX_COUNT}, got ${value}`);
  }
  return value;
}
