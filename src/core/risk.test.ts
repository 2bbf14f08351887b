import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addEpisodeSums,
  assessRisk,
  type BasisRisk,
  episodeSums,
  episodesWithin,
  NO_EPISODES,
  needClassOf,
  normaliseAoc,
  resolveRiskOptions,
  type RiskEpisode,
  riskDefaults,
  riskOf,
  sumEpisodes,
} from './risk.ts';

/** A measured episode: need known, no fallback. */
const ep = (from: number, requested: number, admitted: number, need: number, extra: Partial<RiskEpisode> = {}): RiskEpisode => ({
  from,
  requested,
  admitted,
  need,
  measured: true,
  fallback: false,
  ...extra,
});
const times = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i));

/** Compares every ratio to a hand-computed value (floating point: to 12 digits). */
function expectBasis(actual: BasisRisk, expected: Partial<BasisRisk>): void {
  for (const [k, v] of Object.entries(expected)) expect(actual[k as keyof BasisRisk], k).toBeCloseTo(v, 12);
}
const ZERO: BasisRisk = {
  episodes: 0,
  overuseEpisodes: 0,
  overuseRate: 0,
  aoc: 0,
  growthEpisodes: 0,
  successRate: 0,
  needSum: 0,
  aocNorm: 0,
  score: 0,
};

describe("the paper's headline profiles", () => {
  it('10 episodes with need 3, each asking 6: requested OR 1, AOC 30, AOC_norm 1, ΦR 1.0', () => {
    const r = assessRisk(times(10, () => ep(3, 6, 6, 3)));
    expect(r.requested).toEqual({
      episodes: 10,
      overuseEpisodes: 10,
      overuseRate: 1,
      aoc: 30,
      growthEpisodes: 10,
      successRate: 1,
      needSum: 30,
      aocNorm: 1,
      score: 1,
    });
    // Audit mode let everything through: the realised risk is the intent.
    expect(r.admitted).toEqual(r.requested);
  });

  it('the same intent clamped to the need: requested ΦR 1.0, admitted ΦR 0 (the guard’s effect)', () => {
    // Scale-ups 3 → 6 clamped back to 3: nothing was added, nothing above need.
    const r = assessRisk(times(10, () => ep(3, 6, 3, 3)));
    expect(r.requested.score).toBe(1);
    expect(r.admitted).toEqual({ ...ZERO, episodes: 10, needSum: 30 });
    // Creates (from 0) clamped to 3: every one added instances, none above need.
    const created = assessRisk(times(10, () => ep(0, 6, 3, 3)));
    expectBasis(created.admitted, { overuseRate: 0, aoc: 0, successRate: 1, aocNorm: 0, score: 0 });
  });

  it('10 episodes with need 3, each asking 3: all zeros (SR is 1: they are growth, just not overuse)', () => {
    const r = assessRisk(times(10, () => ep(0, 3, 3, 3)));
    for (const basis of [r.requested, r.admitted]) {
      expectBasis(basis, { overuseRate: 0, aoc: 0, aocNorm: 0, score: 0, successRate: 1, needSum: 30 });
    }
  });
});

describe('edge cases', () => {
  it('no episodes: every number is 0', () => {
    const r = assessRisk([]);
    expect(r).toEqual({ requested: ZERO, admitted: ZERO, fallbackEpisodes: 0, unmeasuredEpisodes: 0 });
    expect(riskOf(NO_EPISODES)).toEqual(r);
  });

  it('Σ need = 0 with surplus: AOC_norm is 1', () => {
    // Two clones (need 0) of one instance each.
    const r = assessRisk([ep(0, 1, 1, 0), ep(0, 1, 1, 0)]);
    expectBasis(r.requested, { overuseRate: 1, aoc: 2, needSum: 0, aocNorm: 1, successRate: 1, score: 1 });
  });

  it('Σ need = 0 without surplus: AOC_norm is 0', () => {
    // The same clones denied: nothing passed, nothing added.
    const r = assessRisk([ep(0, 1, 0, 0), ep(0, 1, 0, 0)]);
    expect(r.admitted).toEqual({ ...ZERO, episodes: 2 });
    expect(normaliseAoc(0, 0)).toBe(0);
    expect(normaliseAoc(3, 0)).toBe(1);
    expect(normaliseAoc(3, 6)).toBe(0.5);
    expect(normaliseAoc(12, 6)).toBe(1);
  });

  it('a mixed set, computed by hand', () => {
    const episodes = [
      ep(1, 5, 3, 2), // requested: over by 3; admitted: over by 1, added
      ep(2, 4, 4, 4), // at need on both; added
      ep(1, 3, 1, 1), // requested: over by 2; denied (admitted = from): nothing added
      ep(1, 2, 2, 3), // under need; added
    ];
    const r = assessRisk(episodes);
    // E 4, Σ need 10. Requested: O 2, AOC 5, SR 1 → ΦR = 1 × (0.5·0.5 + 0.5·0.5) = 0.5.
    expectBasis(r.requested, { episodes: 4, overuseEpisodes: 2, overuseRate: 0.5, aoc: 5, needSum: 10, aocNorm: 0.5, successRate: 1, score: 0.5 });
    // Admitted: O 1, AOC 1, growth 3 → ΦR = 0.75 × (0.5·0.25 + 0.5·0.1) = 0.13125.
    expectBasis(r.admitted, { overuseEpisodes: 1, overuseRate: 0.25, aoc: 1, aocNorm: 0.1, growthEpisodes: 3, successRate: 0.75, score: 0.13125 });

    // α and β move the score, nothing else.
    const orOnly = assessRisk(episodes, { alpha: 1, beta: 0 });
    expect(orOnly.requested.score).toBeCloseTo(0.5, 12);
    expect(orOnly.admitted.score).toBeCloseTo(0.75 * 0.25, 12);
    const aocHeavy = assessRisk(episodes, { alpha: 0.2, beta: 0.8 });
    expect(aocHeavy.requested.score).toBeCloseTo(0.2 * 0.5 + 0.8 * 0.5, 12);
    expect(aocHeavy.admitted.score).toBeCloseTo(0.75 * (0.2 * 0.25 + 0.8 * 0.1), 12);
    expect(aocHeavy.admitted.aoc).toBe(r.admitted.aoc);

    // Tolerance 1: overuse is count > need + 1, and only what is above need + 1 is surplus.
    const tolerant = assessRisk(episodes, { tolerance: 1 });
    // Requested: 5 > 3 (surplus 2), 3 > 2 (surplus 1); O 2, AOC 3 → ΦR = 0.5·0.5 + 0.5·0.3 = 0.4.
    expectBasis(tolerant.requested, { overuseEpisodes: 2, aoc: 3, aocNorm: 0.3, score: 0.4 });
    // Admitted: 3 is not above 2 + 1: nothing is overuse.
    expectBasis(tolerant.admitted, { overuseEpisodes: 0, aoc: 0, score: 0, successRate: 0.75 });
  });

  it('fallback and unmeasured episodes are counted apart and change no ratio', () => {
    const base = times(10, () => ep(3, 6, 6, 3));
    const withOthers: RiskEpisode[] = [
      ...base,
      // The load source was down: onUnavailable hold stood in (need = the current count).
      ep(2, 100, 100, 2, { fallback: true }),
      // onUnavailable caps: no need at all.
      { from: 0, requested: 50, admitted: 50, need: null, measured: true, fallback: true },
      // A Job with no static need.
      { from: 0, requested: 40, admitted: 0, need: null, measured: false, fallback: false },
    ];
    const r = assessRisk(withOthers);
    const plain = assessRisk(base);
    expect(r.requested).toEqual(plain.requested);
    expect(r.admitted).toEqual(plain.admitted);
    expect(r.fallbackEpisodes).toBe(2);
    expect(r.unmeasuredEpisodes).toBe(1);
    expect(needClassOf({ measured: false, fallback: true, need: null })).toBe('unmeasured');
    expect(needClassOf({ measured: true, fallback: false, need: null })).toBe('unmeasured');
    expect(needClassOf({ measured: true, fallback: false, need: 0 })).toBe('measured');
  });

  it('a retry loop is one episode: the sums add what they are given, so the key dedupe comes first', () => {
    // Five identical denied retries of one request, after the episode key made them one.
    const once = assessRisk([ep(2, 10, 2, 2)]);
    expectBasis(once.requested, { episodes: 1, aoc: 8, overuseRate: 1 });
    // Fed without the dedupe, the AOC would be five times as large: what the key prevents
    // (ledger/risk-buckets.test.ts asserts the dedupe through the ledger's buckets).
    expect(assessRisk(times(5, () => ep(2, 10, 2, 2))).requested.aoc).toBe(40);
  });

  it('an explicit addedInstances overrides the steady-count test on the admitted basis', () => {
    // A larger maxSurge: the steady count did not move, potential instances did.
    const r = assessRisk([ep(3, 3, 3, 3, { addedInstances: true }), ep(3, 3, 3, 3)]);
    expect(r.admitted.growthEpisodes).toBe(1);
    expect(r.requested.growthEpisodes).toBe(2);
  });

  it('refuses impossible inputs and options', () => {
    expect(() => episodeSums(ep(0, -1, 0, 1))).toThrow(RangeError);
    expect(() => episodeSums(ep(0, 1, Number.NaN, 1))).toThrow(RangeError);
    expect(() => resolveRiskOptions({ alpha: 0.7, beta: 0.7 })).toThrow(/sum to at most 1/);
    expect(() => resolveRiskOptions({ tolerance: -1 })).toThrow(RangeError);
    expect(resolveRiskOptions()).toEqual({ alpha: 0.5, beta: 0.5, tolerance: 0, normalisation: 'need-sum' });
    expect(riskDefaults).toMatchObject({ windowMs: 3_600_000, highRiskLine: 0.5 });
  });
});

describe('the sliding window', () => {
  const MIN = 60_000;
  const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
  const when = (minutes: number) => new Date(T0 + minutes * MIN);
  // Five overuse episodes at minutes 0–4, five within need at minutes 30–34.
  const recorded = [
    ...times(5, (i) => ({ ...ep(3, 6, 6, 3), at: when(i) })),
    ...times(5, (i) => ({ ...ep(3, 3, 3, 3), at: when(30 + i) })),
  ];

  it('slides past old episodes', () => {
    const window = 30 * MIN;
    // At minute 33 the window starts at minute 3: overuse at 3 and 4, four within need.
    const mid = assessRisk(episodesWithin(recorded, when(33), window));
    // E 6, O 2, AOC 6, Σ need 18 → OR 1/3, AOC_norm 1/3, ΦR 1/3.
    expectBasis(mid.requested, { episodes: 6, overuseEpisodes: 2, aoc: 6, needSum: 18, overuseRate: 1 / 3, aocNorm: 1 / 3, score: 1 / 3 });
    // At minute 40 only the episodes within need are left.
    const late = assessRisk(episodesWithin(recorded, when(40), window));
    expectBasis(late.requested, { episodes: 5, overuseRate: 0, aoc: 0, score: 0 });
    // After minute 64 nothing is.
    expect(assessRisk(episodesWithin(recorded, when(65), window)).requested).toEqual(ZERO);
    // Episodes after `now` (a recording replayed up to a point) are not in the window yet.
    expect(episodesWithin(recorded, when(2), window)).toHaveLength(3);
  });
});

describe('properties', () => {
  const episode = fc
    .record({
      from: fc.nat(20),
      up: fc.nat(20),
      cut: fc.nat(20),
      need: fc.nat(20),
      kind: fc.constantFrom('measured', 'measured', 'measured', 'fallback', 'unmeasured'),
    })
    .map(({ from, up, cut, need, kind }): RiskEpisode => {
      const requested = from + up;
      // What passed is between what ran and what was asked: a denial, a clamp or all of it.
      const admitted = Math.max(from, requested - cut);
      if (kind === 'unmeasured') return { from, requested, admitted, need: null, measured: false, fallback: false };
      return { from, requested, admitted, need, measured: true, fallback: kind === 'fallback' };
    });
  const weights = fc
    .record({ alpha: fc.double({ min: 0, max: 1, noNaN: true }), share: fc.double({ min: 0, max: 1, noNaN: true }) })
    .map(({ alpha, share }) => ({ alpha, beta: (1 - alpha) * share }));
  const tolerance = fc.nat(3);

  it('OR, SR and AOC_norm lie in [0, 1], and so does ΦR', () => {
    fc.assert(
      fc.property(fc.array(episode, { maxLength: 40 }), weights, tolerance, (episodes, w, tol) => {
        const r = assessRisk(episodes, { ...w, tolerance: tol });
        for (const b of [r.requested, r.admitted]) {
          for (const v of [b.overuseRate, b.successRate, b.aocNorm, b.score]) {
            expect(v).toBeGreaterThanOrEqual(0);
            expect(v).toBeLessThanOrEqual(1 + 1e-12);
          }
        }
      }),
    );
  });

  it('admitted ≤ requested ⇒ admitted OR and AOC ≤ requested OR and AOC', () => {
    fc.assert(
      fc.property(fc.array(episode, { maxLength: 40 }), tolerance, (episodes, tol) => {
        const r = assessRisk(episodes, { tolerance: tol });
        expect(r.admitted.aoc).toBeLessThanOrEqual(r.requested.aoc);
        expect(r.admitted.overuseRate).toBeLessThanOrEqual(r.requested.overuseRate);
        expect(r.admitted.score).toBeLessThanOrEqual(r.requested.score + 1e-12);
      }),
    );
  });

  it('the sums are sufficient statistics: any split of the episodes, summed, gives the same ratios', () => {
    fc.assert(
      fc.property(fc.array(episode, { maxLength: 40 }), fc.nat(40), (episodes, at) => {
        const split = Math.min(at, episodes.length);
        const parts = addEpisodeSums(sumEpisodes(episodes.slice(split)), sumEpisodes(episodes.slice(0, split)));
        expect(riskOf(parts)).toEqual(assessRisk(episodes));
        expect(parts.measured + parts.fallback + parts.unmeasured).toBe(episodes.length);
      }),
    );
  });
});
