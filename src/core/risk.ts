/**
 * The risk metrics of DESIGN.md "Risk metrics" (after "Dive into the Agent Matrix",
 * arXiv 2509.25302): Overuse Rate (OR), Aggregate Overuse Count (AOC), the success rate
 * (SR) and the composite risk score ΦR = SR × (α·OR + β·AOC_norm), per basis.
 *
 * Pure and free of Prometheus types: the guard computes its windowed gauges with it (from
 * the per-minute sums in the shared ledger) and an offline evaluator can run it over
 * recorded episodes. Everything is computed in two steps, on purpose:
 *
 *   1. each episode becomes a small vector of sums ({@link episodeSums}): E, O, growth,
 *      surplus and need, per basis, plus the fallback and unmeasured counts;
 *   2. the ratios are computed from summed vectors ({@link riskOf}).
 *
 * Every ratio here (O/E, growth/E, AOC/Σ need) is a function of sums over episodes, so a
 * sum of per-episode vectors (a per-minute bucket, a Prometheus counter) carries all the
 * information the ratios need: the buckets and the counters are sufficient statistics, and
 * aggregating episodes, buckets or counters gives the same numbers.
 */

/** `requested`: the agent's own count (its intent). `admitted`: what passed the guard (the realised risk). */
export type Basis = 'requested' | 'admitted';
export const BASES: readonly Basis[] = ['requested', 'admitted'];

/**
 * How an episode's need was known. `measured`: a load signal or a static need (OR and AOC
 * count it). `fallback`: a stand-in from the policy's `onUnavailable` (the load source was
 * down, or another fact was missing). `unmeasured`: no load signal and no static need
 * (judged by caps alone). Only measured episodes enter OR, AOC, SR and ΦR.
 */
export type NeedClass = 'measured' | 'fallback' | 'unmeasured';
export const NEED_CLASSES: readonly NeedClass[] = ['measured', 'fallback', 'unmeasured'];

/**
 * How AOC is brought into [0, 1]. `need-sum`: AOC_norm = min(1, AOC / Σ need), and when
 * Σ need = 0, 1 if AOC > 0 else 0 (a family that needed nothing and got something is at
 * the maximum). One choice today; the type leaves room for more.
 */
export type Normalisation = 'need-sum';
export const NORMALISATIONS: readonly Normalisation[] = ['need-sum'];

/** What the ratios and the score are computed with. */
export interface RiskOptions {
  /** Weight of OR in ΦR. */
  readonly alpha: number;
  /** Weight of AOC_norm in ΦR. */
  readonly beta: number;
  /**
   * Instances above need that are not overuse: an episode is overuse when its count
   * exceeds need + tolerance, and its surplus (its share of AOC) is the count above
   * need + tolerance. With the default 0 both are the paper's definitions.
   */
  readonly tolerance: number;
  readonly normalisation: Normalisation;
}

/** The settings the guard and the rules generator share: the options plus the window and the line. */
export interface RiskSettings extends RiskOptions {
  /** The sliding window of the gauges and of the recording rules. */
  readonly windowMs: number;
  /** ΦR at or above this is high risk (the paper's 0.5). */
  readonly highRiskLine: number;
}

/** The defaults of DESIGN.md and the paper; `config.ts` takes its defaults from here. */
export const riskDefaults: RiskSettings = Object.freeze({
  alpha: 0.5,
  beta: 0.5,
  tolerance: 0,
  normalisation: 'need-sum',
  windowMs: 60 * 60 * 1000,
  highRiskLine: 0.5,
});

/**
 * Checks options given by hand (the configuration schema checks the same): weights in
 * [0, 1] summing to at most 1, so that ΦR stays in [0, 1] whenever SR does, and a
 * non-negative tolerance.
 */
export function resolveRiskOptions(options: Partial<RiskOptions> = {}): RiskOptions {
  const out: RiskOptions = {
    alpha: options.alpha ?? riskDefaults.alpha,
    beta: options.beta ?? riskDefaults.beta,
    tolerance: options.tolerance ?? riskDefaults.tolerance,
    normalisation: options.normalisation ?? riskDefaults.normalisation,
  };
  const unit = (v: number) => Number.isFinite(v) && v >= 0 && v <= 1;
  if (!unit(out.alpha) || !unit(out.beta) || out.alpha + out.beta > 1) {
    throw new RangeError(`alpha and beta must lie in [0, 1] and sum to at most 1, got ${out.alpha} and ${out.beta}`);
  }
  if (!Number.isFinite(out.tolerance) || out.tolerance < 0) throw new RangeError(`tolerance must be 0 or more, got ${out.tolerance}`);
  if (!NORMALISATIONS.includes(out.normalisation)) throw new RangeError(`unknown normalisation ${String(out.normalisation)}`);
  return out;
}

/**
 * One episode as the math needs it. `Episode` (core/episode.ts) fits as it is; an
 * offline evaluator builds these from a recording.
 */
export interface RiskEpisode {
  /** The steady count before the request (0 on CREATE). */
  readonly from: number;
  /** The agent's own requested steady count, before any clamp. */
  readonly requested: number;
  /** What passed the guard: `from` when denied, the clamped count when clamped. */
  readonly admitted: number;
  /** The need the decision used; null when judged by caps alone. */
  readonly need: number | null;
  /** False when the kind had no load signal and no static need. */
  readonly measured: boolean;
  /** True when the need was a stand-in (`onUnavailable`). */
  readonly fallback: boolean;
  /**
   * Whether what passed the guard added instances (SR's numerator on the admitted basis).
   * Absent: `admitted > from`, i.e. steady counts, like need, overuse and AOC; a change
   * that only raises potential instances (a larger maxSurge) then does not count.
   */
  readonly addedInstances?: boolean | undefined;
}

/** The sums of one basis: enough for OR, SR and AOC. */
export interface BasisSums {
  /** O: episodes whose count exceeds need + tolerance. */
  readonly overuse: number;
  /** Episodes that added instances. On the requested basis every episode (SR = 1 by definition). */
  readonly growth: number;
  /** AOC: Σ max(0, count − need − tolerance). */
  readonly surplus: number;
}

/**
 * The sufficient statistics of a set of episodes. E and Σ need are the same on both bases
 * (the same episodes, the same need), so they are kept once.
 */
export interface EpisodeSums {
  /** E: measured episodes. */
  readonly measured: number;
  /** Σ need over the measured episodes: AOC_norm's denominator. */
  readonly needSum: number;
  /** Episodes decided on a fallback need: counted, kept out of the ratios. */
  readonly fallback: number;
  /** Episodes with no need at all: counted, kept out of the ratios. */
  readonly unmeasured: number;
  readonly requested: BasisSums;
  readonly admitted: BasisSums;
}

const NO_BASIS: BasisSums = Object.freeze({ overuse: 0, growth: 0, surplus: 0 });

/** The sums of no episodes at all. */
export const NO_EPISODES: EpisodeSums = Object.freeze({
  measured: 0,
  needSum: 0,
  fallback: 0,
  unmeasured: 0,
  requested: NO_BASIS,
  admitted: NO_BASIS,
});

/** The ratios of one basis. */
export interface BasisRisk {
  /** E. */
  readonly episodes: number;
  /** O. */
  readonly overuseEpisodes: number;
  /** OR = O / E, 0 when E = 0. */
  readonly overuseRate: number;
  /** AOC = Σ surplus. */
  readonly aoc: number;
  /** Episodes that added instances. */
  readonly growthEpisodes: number;
  /** SR = growth / E, 0 when E = 0. */
  readonly successRate: number;
  /** Σ need. */
  readonly needSum: number;
  /** AOC brought into [0, 1] by the normalisation. */
  readonly aocNorm: number;
  /** ΦR = SR × (α·OR + β·AOC_norm). */
  readonly score: number;
}

/** OR, AOC, SR, AOC_norm and ΦR on both bases, and the episodes kept out of them. */
export interface RiskReport {
  readonly requested: BasisRisk;
  readonly admitted: BasisRisk;
  readonly fallbackEpisodes: number;
  readonly unmeasuredEpisodes: number;
}

function nonNegative(value: number, what: string): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${what} must be a finite number of 0 or more, got ${value}`);
  return value;
}

/**
 * Which class an episode falls in. A measured episode decided on a stand-in need is a
 * fallback; one judged by caps alone with no need at all (need null without a fallback
 * cannot come from the judge, but a recording might hold it) has nothing to compare with
 * and is unmeasured.
 */
export function needClassOf(episode: Pick<RiskEpisode, 'measured' | 'fallback' | 'need'>): NeedClass {
  if (!episode.measured) return 'unmeasured';
  if (episode.fallback) return 'fallback';
  return episode.need === null ? 'unmeasured' : 'measured';
}

function basisOf(count: number, need: number, tolerance: number, grew: boolean): BasisSums {
  const above = count - need - tolerance;
  return { overuse: above > 0 ? 1 : 0, growth: grew ? 1 : 0, surplus: Math.max(0, above) };
}

/** The sums of one episode; the tolerance is applied here, once. */
export function episodeSums(episode: RiskEpisode, options: Pick<RiskOptions, 'tolerance'> = riskDefaults): EpisodeSums {
  const from = nonNegative(episode.from, 'from');
  const requested = nonNegative(episode.requested, 'requested');
  const admitted = nonNegative(episode.admitted, 'admitted');
  const tolerance = nonNegative(options.tolerance, 'tolerance');
  const cls = needClassOf(episode);
  if (cls === 'fallback') return { ...NO_EPISODES, fallback: 1 };
  if (cls === 'unmeasured' || episode.need === null) return { ...NO_EPISODES, unmeasured: 1 };
  const need = nonNegative(episode.need, 'need');
  return {
    measured: 1,
    needSum: need,
    fallback: 0,
    unmeasured: 0,
    // Every episode is a growth request: on the requested basis it "added instances" by definition.
    requested: basisOf(requested, need, tolerance, true),
    admitted: basisOf(admitted, need, tolerance, episode.addedInstances ?? admitted > from),
  };
}

const addBasis = (a: BasisSums, b: BasisSums): BasisSums => ({
  overuse: a.overuse + b.overuse,
  growth: a.growth + b.growth,
  surplus: a.surplus + b.surplus,
});

/** Adds two sets of sums: episodes, minutes, agents or replicas alike. */
export function addEpisodeSums(a: EpisodeSums, b: EpisodeSums): EpisodeSums {
  return {
    measured: a.measured + b.measured,
    needSum: a.needSum + b.needSum,
    fallback: a.fallback + b.fallback,
    unmeasured: a.unmeasured + b.unmeasured,
    requested: addBasis(a.requested, b.requested),
    admitted: addBasis(a.admitted, b.admitted),
  };
}

/**
 * The sums of a list of episodes. It does not dedupe: each element is one episode, the
 * episode key having made a retry loop one episode before it got here.
 */
export function sumEpisodes(episodes: Iterable<RiskEpisode>, options: Pick<RiskOptions, 'tolerance'> = riskDefaults): EpisodeSums {
  let sums = NO_EPISODES;
  for (const e of episodes) sums = addEpisodeSums(sums, episodeSums(e, options));
  return sums;
}

/** AOC in [0, 1]; see {@link Normalisation}. */
export function normaliseAoc(aoc: number, needSum: number, normalisation: Normalisation = 'need-sum'): number {
  switch (normalisation) {
    case 'need-sum':
      if (needSum <= 0) return aoc > 0 ? 1 : 0;
      return Math.min(1, aoc / needSum);
  }
}

function basisRisk(sums: EpisodeSums, basis: BasisSums, options: Pick<RiskOptions, 'alpha' | 'beta' | 'normalisation'>): BasisRisk {
  const e = sums.measured;
  const overuseRate = e > 0 ? basis.overuse / e : 0;
  const successRate = e > 0 ? basis.growth / e : 0;
  const aocNorm = normaliseAoc(basis.surplus, sums.needSum, options.normalisation);
  return {
    episodes: e,
    overuseEpisodes: basis.overuse,
    overuseRate,
    aoc: basis.surplus,
    growthEpisodes: basis.growth,
    successRate,
    needSum: sums.needSum,
    aocNorm,
    score: successRate * (options.alpha * overuseRate + options.beta * aocNorm),
  };
}

/**
 * The ratios from sums. The tolerance is not an input: it was applied when each episode
 * became sums, which is why the guard's buckets and counters hold the tolerance that was
 * configured when each episode was recorded.
 */
export function riskOf(
  sums: EpisodeSums,
  options: Pick<RiskOptions, 'alpha' | 'beta' | 'normalisation'> = riskDefaults,
): RiskReport {
  return {
    requested: basisRisk(sums, sums.requested, options),
    admitted: basisRisk(sums, sums.admitted, options),
    fallbackEpisodes: sums.fallback,
    unmeasuredEpisodes: sums.unmeasured,
  };
}

/** OR, AOC, SR, AOC_norm and ΦR of a list of episodes (already windowed and deduplicated). */
export function assessRisk(episodes: Iterable<RiskEpisode>, options: Partial<RiskOptions> = {}): RiskReport {
  const resolved = resolveRiskOptions(options);
  return riskOf(sumEpisodes(episodes, resolved), resolved);
}

/**
 * The episodes of the sliding window ending at `now`: recorded at or after
 * `now − windowMs` and not after `now`. Exact to the millisecond; the guard's per-minute
 * buckets round the window outward to whole minutes instead (see ledger/risk-buckets.ts).
 */
export function episodesWithin<T extends { readonly at: Date }>(episodes: Iterable<T>, now: Date, windowMs: number): T[] {
  const end = now.getTime();
  const start = end - windowMs;
  const out: T[] = [];
  for (const e of episodes) {
    const t = e.at.getTime();
    if (t >= start && t <= end) out.push(e);
  }
  return out;
}
