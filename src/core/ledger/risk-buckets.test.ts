import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { at, HOUR, key, limits, MIN, res, small, T0 } from '../../../test/helpers/ledger-state-fixtures.ts';
import { assessRisk, episodeSums, episodesWithin, NO_EPISODES, type RiskEpisode, riskDefaults, riskOf } from '../risk.ts';
import { enforceBounds } from './enforce-bounds.ts';
import { expire } from './expire.ts';
import type { LedgerLimits } from './limits.ts';
import { parseState } from './parse.ts';
import { reserve } from './reservations.ts';
import { episodeSumsWithin, familyWithin, recordEpisodeOnce, recordFamily, riskWithin } from './risk-buckets.ts';
import { serializeState } from './serialize.ts';
import { type AgentLedgerState, emptyState, isEmptyState } from './state.ts';

describe('episode buckets (risk metrics)', () => {
  const ep = (from: number, requested: number, admitted: number, need: number | null, extra: Partial<RiskEpisode> = {}): RiskEpisode => ({
    from,
    requested,
    admitted,
    need,
    measured: need !== null,
    fallback: false,
    ...extra,
  });
  const record = (s: AgentLedgerState, k: string, e: RiskEpisode, now: Date, l = limits) =>
    recordEpisodeOnce(s, k, episodeSums(e, riskDefaults), now, l);

  it('a retry loop adds its sums once: only a new episode key records them', () => {
    let s = emptyState();
    const news: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      // The same key each time: the agent retrying a denied 2 → 10 with need 2.
      const out = record(s, key('retry'), ep(2, 10, 2, 2), at(i * 1000));
      news.push(out.isNew);
      s = out.state;
    }
    expect(news).toEqual([true, false, false, false, false]);
    const r = riskWithin(s, HOUR, at(5000), riskDefaults);
    expect(r.requested).toMatchObject({ episodes: 1, overuseEpisodes: 1, aoc: 8, needSum: 2, score: 1 });
    expect(r.admitted).toMatchObject({ episodes: 1, overuseEpisodes: 0, aoc: 0, growthEpisodes: 0, score: 0 });
    // A duplicate changes nothing at all: the step writes nothing.
    expect(record(s, key('retry'), ep(2, 10, 2, 2), at(6000)).state).toBe(s);
  });

  it('keeps fallback and unmeasured episodes in their own counts', () => {
    let s = emptyState();
    s = record(s, key(1), ep(3, 6, 6, 3), at(0)).state;
    s = record(s, key(2), ep(3, 60, 60, 3, { fallback: true }), at(1)).state;
    s = record(s, key(3), ep(0, 50, 50, null), at(2)).state;
    const sums = episodeSumsWithin(s, HOUR, at(3));
    expect(sums).toMatchObject({ measured: 1, fallback: 1, unmeasured: 1, needSum: 3 });
    expect(riskWithin(s, HOUR, at(3), riskDefaults).requested).toMatchObject({ overuseRate: 1, aoc: 3, aocNorm: 1, score: 1 });
    // Several episodes of one minute share a bucket.
    expect(s.episodeBuckets).toHaveLength(1);
  });

  it('slides past old episodes, minute by minute, rounding the window outward like the rate', () => {
    let s = emptyState();
    const l: LedgerLimits = { ...limits, windowMs: 30 * MIN };
    for (let i = 0; i < 5; i++) s = record(s, key(`o${i}`), ep(3, 6, 6, 3), at(i * MIN), l).state;
    for (let i = 0; i < 5; i++) s = record(s, key(`f${i}`), ep(3, 3, 3, 3), at((30 + i) * MIN), l).state;
    const W = 30 * MIN;
    // At minute 33 the window starts at minute 3: two overuse episodes, four within need.
    expect(riskWithin(s, W, at(33 * MIN), riskDefaults).requested).toMatchObject({ episodes: 6, overuseEpisodes: 2, aoc: 6, needSum: 18 });
    expect(riskWithin(s, W, at(33 * MIN), riskDefaults).requested.score).toBeCloseTo(1 / 3, 12);
    // Half a minute later the episode of minute 3 is 30.5 minutes old, but its minute
    // still overlaps the window: whole minutes, rounded outward.
    expect(riskWithin(s, W, at(33.5 * MIN), riskDefaults).requested.overuseEpisodes).toBe(2);
    expect(riskWithin(s, W, at(40 * MIN), riskDefaults).requested).toMatchObject({ episodes: 5, overuseEpisodes: 0, score: 0 });
    // Expiry drops the buckets the window left behind, and the state empties out.
    const later = expire(s, at(40 * MIN), l);
    expect(later.episodeBuckets?.map((b) => b.minute)).toEqual([30, 31, 32, 33, 34].map((m) => Math.floor(T0 / MIN) + m));
    const gone = expire(s, at(70 * MIN), l);
    expect(gone.episodeBuckets).toBeUndefined();
    expect(isEmptyState(gone)).toBe(true);
    expect(episodeSumsWithin(gone, W, at(70 * MIN))).toEqual(NO_EPISODES);
    // Nothing to drop: the same object (no write).
    expect(expire(later, at(40 * MIN), l)).toBe(later);
  });

  it('agrees with risk.ts over the same episodes (distinct keys, any times within the window)', () => {
    const episode = fc
      .record({ from: fc.nat(10), up: fc.nat(10), cut: fc.nat(10), need: fc.option(fc.nat(10), { nil: null }), fallback: fc.boolean(), minute: fc.nat(90) })
      .map(({ from, up, cut, need, fallback, minute }) => ({
        ...ep(from, from + up, Math.max(from, from + up - cut), need, { fallback: need !== null && fallback }),
        at: at(minute * MIN + 123),
      }));
    fc.assert(
      fc.property(fc.array(episode, { maxLength: 30 }), (episodes) => {
        const sorted = [...episodes].sort((a, b) => a.at.getTime() - b.at.getTime());
        const l: LedgerLimits = { ...limits, windowMs: 2 * HOUR };
        let s = emptyState();
        sorted.forEach((e, i) => {
          s = record(s, key(`p${i}`), e, e.at, l).state;
        });
        // A window on minute boundaries: the buckets' outward rounding changes nothing.
        const now = at(91 * MIN);
        const expected = assessRisk(episodesWithin(sorted, now, HOUR));
        expect(riskWithin(s, HOUR, now, riskDefaults)).toEqual(expected);
        expect(riskOf(episodeSumsWithin(s, HOUR, now))).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });

  it("keeps the family's size and the latest need per workload, within the window", () => {
    let s = emptyState();
    s = recordFamily(s, { instances: 4, workload: 'uid-a', need: 2 }, at(0), limits);
    s = recordFamily(s, { instances: 7, workload: 'uid-b', need: 3 }, at(MIN), limits);
    // A later decision on uid-a replaces its need; one without a measured need keeps it.
    s = recordFamily(s, { instances: 9, workload: 'uid-a', need: 4 }, at(2 * MIN), limits);
    s = recordFamily(s, { instances: 10 }, at(3 * MIN), limits);
    expect(familyWithin(s, HOUR, at(3 * MIN))).toEqual({ instances: 10, need: 7 });
    // uid-b's need, seen at minute 1, has left a 90-second window ending at minute 3.
    expect(familyWithin(s, 1.5 * MIN, at(3 * MIN))).toEqual({ instances: 10, need: 4 });
    expect(familyWithin(s, HOUR, at(3 * MIN + HOUR + 1))).toBeUndefined();
    const l = small({ workloadNeeds: 2 });
    let t = emptyState();
    for (const w of ['a', 'b', 'c']) t = recordFamily(t, { instances: 1, workload: w, need: 1 }, at(0), l);
    expect(t.workloadNeeds?.map((w) => w.workload)).toEqual(['b', 'c']);
    const gone = expire(s, at(2 * HOUR), limits);
    expect(gone.family).toBeUndefined();
    expect(isEmptyState(gone)).toBe(true);
  });

  it('round-trips through JSON; without episodes the JSON is exactly the earlier version 1 form', () => {
    let s = reserve(emptyState(), res(key(1)), at(0), limits);
    const plain = JSON.parse(serializeState(s)) as Record<string, unknown>;
    expect(Object.keys(plain)).toEqual(['version', 'held', 'episodeKeys', 'provenance', 'reservations', 'rate', 'losses', 'lossBuckets', 'evictions']);
    s = record(s, key(2), ep(1, 5, 3, 2), at(0)).state;
    s = record(s, key(3), ep(0, 1, 0, 0), at(MIN)).state;
    s = recordFamily(s, { instances: 5, workload: 'uid-w', need: 2 }, at(MIN), limits);
    const text = serializeState(s);
    expect(JSON.parse(text)).toMatchObject({ version: 1, family: { instances: 5 }, workloadNeeds: [{ workload: 'uid-w', need: 2 }] });
    expect(parseState(text, limits)).toEqual({ state: s, problems: [], sourceVersion: 1 });
  });

  it('reads bad episode entries one by one, and merges two buckets of one minute', () => {
    const basis = { overuse: 1, growth: 1, surplus: 2 };
    const bucket = { minute: 5, measured: 1, needSum: 3, fallback: 0, unmeasured: 0, requested: basis, admitted: basis };
    const parsed = parseState(
      JSON.stringify({
        version: 1,
        episodeBuckets: [bucket, { ...bucket, measured: -1 }, { ...bucket, admitted: 'x' }, { ...bucket, minute: 5 }, { ...bucket, minute: 4 }],
        family: { instances: 'many' },
        workloadNeeds: [{ workload: 'uid-a', need: 2, at: T0 }, { workload: 'a"b', need: 1, at: T0 }],
      }),
    );
    expect(parsed.problems).toEqual(['episodeBuckets: 2 unreadable entries dropped', 'workloadNeeds: 1 unreadable entry dropped', 'family: unreadable; ignored']);
    expect(parsed.state.episodeBuckets?.map((b) => [b.minute, b.measured, b.requested.surplus])).toEqual([
      [4, 1, 2],
      [5, 2, 4],
    ]);
    expect(parsed.state.family).toBeUndefined();
  });

  it('stays within its bounds and refuses sums that are not whole numbers', () => {
    const l = small({ episodeBuckets: 3 });
    let s = emptyState();
    for (let i = 0; i < 10; i++) s = record(s, key(i), ep(0, 2, 2, 1), at(i * MIN), l).state;
    expect(s.episodeBuckets).toHaveLength(3);
    const many = { ...s, episodeBuckets: [...(s.episodeBuckets ?? []), ...(s.episodeBuckets ?? []).map((b) => ({ ...b, minute: b.minute + 100 }))] };
    expect(enforceBounds(many, l).episodeBuckets).toHaveLength(3);
    expect(() => record(emptyState(), key(1), ep(0, 2.5, 2, 1), at(0))).toThrow(RangeError);
  });
});
