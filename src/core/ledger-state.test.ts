import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addProvenance,
  type AgentLedgerState,
  compactId,
  confirmObserved,
  confirmReservation,
  emptyState,
  enforceBounds,
  episodeSumsWithin,
  expire,
  familyWithin,
  forgetGoneProvenance,
  forgetProvenance,
  hasEpisodeKey,
  hasProvenance,
  holdRequested,
  isEmptyState,
  LEDGER_BOUNDS,
  LEDGER_STATE_VERSION,
  type LedgerLimits,
  lossesWithin,
  MAX_WINDOW_MS,
  parseState,
  rateUsed,
  recordEpisodeKey,
  recordEpisodeOnce,
  recordFamily,
  recordJustification,
  recordLoss,
  releaseExpired,
  requestedFor,
  reserve,
  reservedInstances,
  riskWithin,
  serializeState,
} from './ledger-state.ts';
import { assessRisk, episodeSums, episodesWithin, NO_EPISODES, type RiskEpisode, riskDefaults, riskOf } from './risk.ts';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const at = (ms: number) => new Date(T0 + ms);
const MIN = 60_000;
const HOUR = 60 * MIN;

const limits: LedgerLimits = { windowMs: HOUR, maxWindowMs: 2 * HOUR, reservationTtlMs: 2 * MIN };
const small = (bounds: LedgerLimits['bounds']): LedgerLimits => ({ ...limits, bounds });
const key = (n: number | string) => JSON.stringify(['system:serviceaccount:agents:a', 'uid-w', 1, n]);
const res = (k: string, added = 1, workload = 'uid-w', steady = 2) => ({ key: k, workload, steady, addedInstances: added });

describe('emptyState and compactId', () => {
  it('starts at version 1 with nothing in it', () => {
    const s = emptyState();
    expect(s.version).toBe(1);
    expect(LEDGER_STATE_VERSION).toBe(1);
    expect(isEmptyState(s)).toBe(true);
    expect(rateUsed(s, HOUR, at(0))).toBe(0);
    expect(reservedInstances(s)).toBe(0);
    expect(lossesWithin(s, HOUR, at(0))).toBe(0);
  });

  it('keeps Kubernetes UIDs readable and hashes anything long or unsafe to a fixed size', () => {
    expect(compactId('8d3c5a2e-2b1f-4c7a-9e0d-0b6a1f2c3d4e')).toBe('8d3c5a2e-2b1f-4c7a-9e0d-0b6a1f2c3d4e');
    const long = compactId(key(5));
    expect(long).toMatch(/^#[A-Za-z0-9_-]{22}$/);
    expect(compactId(key(5))).toBe(long);
    expect(compactId(key(6))).not.toBe(long);
    expect(compactId('"'.repeat(10))).toMatch(/^#/);
    expect(compactId('a'.repeat(41))).toMatch(/^#/);
  });

  it('returns a compacted id unchanged, so that a key hashed once works everywhere', () => {
    const once = compactId(key(7));
    expect(compactId(once)).toBe(once);
    const s = recordEpisodeKey(emptyState(), once, at(0), limits).state;
    expect(recordEpisodeKey(s, key(7), at(1), limits).isNew).toBe(false);
    // Something that merely starts with '#' but is not a hash's shape is hashed.
    expect(compactId('#short')).not.toBe('#short');
    expect(compactId(`#${'a'.repeat(23)}`)).toMatch(/^#[A-Za-z0-9_-]{22}$/);
  });
});

describe('held requests', () => {
  it("keeps the agent's first count: a reinvocation never overwrites it within the window", () => {
    let s = holdRequested(emptyState(), key(10), 10, at(0), limits);
    const again = holdRequested(s, key(10), 4, at(1000), limits);
    expect(again).toBe(s);
    expect(requestedFor(again, key(10), at(2000), limits)).toBe(10);
    expect(requestedFor(again, key(11), at(2000), limits)).toBeUndefined();
    expect(requestedFor(again, key(10), at(HOUR + 1), limits)).toBeUndefined();
    s = holdRequested(again, key(10), 7, at(HOUR + 1), limits);
    expect(requestedFor(s, key(10), at(HOUR + 2), limits)).toBe(7);
    expect(s.held).toHaveLength(1);
  });

  it('drops the oldest past its bound and counts only live ones as evictions', () => {
    const l = small({ held: 2 });
    let s = holdRequested(emptyState(), key(1), 1, at(0), l);
    s = holdRequested(s, key(2), 2, at(HOUR - 10), l);
    s = holdRequested(s, key(3), 3, at(HOUR + 10), l); // key(1) had expired: not an eviction
    expect(s.evictions.held).toBe(0);
    s = holdRequested(s, key(4), 4, at(HOUR + 20), l); // key(2) still live
    expect(s.evictions.held).toBe(1);
    expect(s.held.map((h) => h.requested)).toEqual([3, 4]);
  });

  it('rejects counts that are not whole non-negative int32 numbers', () => {
    expect(() => holdRequested(emptyState(), key(1), -1, at(0), limits)).toThrow(RangeError);
    expect(() => holdRequested(emptyState(), key(1), 1.5, at(0), limits)).toThrow(RangeError);
    expect(() => holdRequested(emptyState(), key(1), Number.NaN, at(0), limits)).toThrow(RangeError);
  });
});

describe('episode keys', () => {
  it('records a key once within the window and again after it', () => {
    const first = recordEpisodeKey(emptyState(), key(1), at(0), limits);
    expect(first.isNew).toBe(true);
    const dup = recordEpisodeKey(first.state, key(1), at(HOUR - 1), limits);
    expect(dup).toEqual({ state: first.state, isNew: false });
    expect(dup.state).toBe(first.state);
    expect(hasEpisodeKey(first.state, key(1), at(10), limits)).toBe(true);
    expect(hasEpisodeKey(first.state, key(1), at(HOUR + 1), limits)).toBe(false);
    const later = recordEpisodeKey(first.state, key(1), at(HOUR + 1), limits);
    expect(later.isNew).toBe(true);
    expect(later.state.episodeKeys).toEqual([{ key: compactId(key(1)), at: T0 + HOUR + 1 }]);
  });

  it('keeps a bounded set and counts the keys evicted before their window ended', () => {
    const l = small({ episodeKeys: 3 });
    let s = emptyState();
    for (let i = 0; i < 5; i++) s = recordEpisodeKey(s, key(i), at(i), l).state;
    expect(s.episodeKeys).toHaveLength(3);
    expect(s.evictions.episodeKeys).toBe(2);
    // An evicted key comes back as new: that is the cost the eviction count makes visible.
    expect(recordEpisodeKey(s, key(0), at(10), l).isNew).toBe(true);
    expect(recordEpisodeKey(s, key(4), at(10), l).isNew).toBe(false);
  });
});

describe('provenance', () => {
  it('adds, refreshes to the newest, forgets, and evicts the least recently seen past the bound', () => {
    const l = small({ provenance: 2 });
    let s = addProvenance(emptyState(), 'uid-a', at(0), l);
    expect(addProvenance(s, 'uid-a', at(0), l)).toBe(s);
    s = addProvenance(s, 'uid-b', at(1), l);
    s = addProvenance(s, 'uid-a', at(2), l); // seen again: now the newest
    expect(s.provenance.map((p) => p.uid)).toEqual(['uid-b', 'uid-a']);
    s = addProvenance(s, 'uid-c', at(3), l);
    expect(s.provenance.map((p) => p.uid)).toEqual(['uid-a', 'uid-c']);
    expect(s.evictions.provenance).toBe(1);
    expect(hasProvenance(s, 'uid-a')).toBe(true);
    expect(hasProvenance(s, 'uid-b')).toBe(false);
    const gone = forgetProvenance(s, 'uid-a');
    expect(hasProvenance(gone, 'uid-a')).toBe(false);
    expect(forgetProvenance(gone, 'uid-a')).toBe(gone);
  });

  it('forgets every workload the view saw deleted, so that dead entries never evict live ones', () => {
    const l = small({ provenance: 3 });
    let s = emptyState();
    for (const uid of ['live', 'dead-1', 'dead-2']) s = addProvenance(s, uid, at(0), l);
    const dead = new Set(['dead-1', 'dead-2']);
    const pruned = forgetGoneProvenance(s, (uid) => dead.has(uid));
    expect(pruned.provenance.map((p) => p.uid)).toEqual(['live']);
    expect(forgetGoneProvenance(pruned, (uid) => dead.has(uid))).toBe(pruned);
    // Two new workloads now fit beside the live one without evicting it.
    let next = addProvenance(pruned, 'new-1', at(1), l);
    next = addProvenance(next, 'new-2', at(2), l);
    expect(hasProvenance(next, 'live')).toBe(true);
    expect(next.evictions.provenance).toBe(0);
  });

  it('does not expire with time: a workload stays in the family while it exists', () => {
    const s = addProvenance(emptyState(), 'uid-a', at(0), limits);
    expect(hasProvenance(expire(s, at(100 * HOUR), limits), 'uid-a')).toBe(true);
  });
});

describe('reservations and the rate', () => {
  it('counts a reservation in the rate and the reserved instances until it is confirmed or released', () => {
    let s = reserve(emptyState(), res(key(1), 3), at(0), limits);
    expect(reserve(s, res(key(1), 3), at(10), limits)).toBe(s); // the apiserver calling again
    expect(rateUsed(s, 5 * MIN, at(30_000))).toBe(3);
    expect(reservedInstances(s)).toBe(3);
    expect(reservedInstances(s, at(0), ['uid-w'])).toBe(3);
    expect(reservedInstances(s, at(0), ['uid-other'])).toBe(0);
    // Past its timeout it no longer counts, even before expire() removes it.
    expect(reservedInstances(s, at(2 * MIN))).toBe(0);
    expect(rateUsed(s, 5 * MIN, at(2 * MIN))).toBe(0);
    const released = releaseExpired(s, at(2 * MIN));
    expect(released.released.map((r) => r.addedInstances)).toEqual([3]);
    expect(released.state.reservations).toEqual([]);
    expect(releaseExpired(released.state, at(3 * MIN)).state).toBe(released.state);
    s = expire(s, at(2 * MIN), limits);
    expect(s.reservations).toEqual([]);
  });

  it('moves a confirmed reservation into the bucket of the minute it was admitted, never lowering the rate used', () => {
    const s0 = reserve(emptyState(), res(key(1), 2), at(59_000), limits);
    const before = rateUsed(s0, 5 * MIN, at(70_000));
    const { state, confirmed } = confirmReservation(s0, key(1), at(70_000), limits);
    expect(confirmed).toBe(true);
    expect(state.reservations).toEqual([]);
    expect(state.rate).toEqual([{ minute: Math.floor((T0 + 59_000) / MIN), instances: 2 }]);
    expect(rateUsed(state, 5 * MIN, at(70_000))).toBeGreaterThanOrEqual(before);
    expect(reservedInstances(state)).toBe(0);
    expect(confirmReservation(state, key(1), at(80_000), limits).confirmed).toBe(false);
  });

  it('confirms by what the view shows: every id of the workload, at that count or more', () => {
    let s = reserve(emptyState(), res(key(1), 1, 'apps/Deployment/agents/w', 3), at(0), limits);
    s = reserve(s, res(key(2), 2, 'uid-w', 5), at(1), limits);
    const low = confirmObserved(s, ['uid-w', 'apps/Deployment/agents/w'], 4, at(10), limits);
    expect(low.confirmed).toBe(1);
    expect(low.state.reservations.map((r) => r.steady)).toEqual([5]);
    const all = confirmObserved(low.state, ['uid-w'], 5, at(20), limits);
    expect(all.confirmed).toBe(1);
    expect(rateUsed(all.state, 5 * MIN, at(30))).toBe(3);
    expect(confirmObserved(all.state, ['uid-w'], 9, at(30), limits).state).toBe(all.state);
  });

  it('counts whole minutes rounded outward: the window errs on the strict side', () => {
    let s = reserve(emptyState(), res(key(1), 1), at(0), limits);
    s = confirmReservation(s, key(1), at(1), limits).state;
    // The bucket's minute started before T0 + 0; a 5 minute window ending 5 min 30 s later still touches it.
    const minuteStart = Math.floor(T0 / MIN) * MIN;
    expect(rateUsed(s, 5 * MIN, new Date(minuteStart + 5 * MIN + 59_999))).toBe(1);
    expect(rateUsed(s, 5 * MIN, new Date(minuteStart + 6 * MIN))).toBe(0);
  });

  it('charges reservations dropped by the bound to the rate instead of forgetting them', () => {
    const l = small({ reservations: 2 });
    let s = emptyState();
    for (let i = 0; i < 5; i++) s = reserve(s, res(key(i), 1), at(i * 1000), l);
    expect(s.reservations).toHaveLength(2);
    expect(s.evictions.reservations).toBe(3);
    expect(rateUsed(s, 5 * MIN, at(10_000))).toBe(5);
    expect(reservedInstances(s)).toBe(2);
  });

  it('expires buckets past the longest window in use, and clamps that window to 24 h', () => {
    let s = reserve(emptyState(), res(key(1), 1), at(0), limits);
    s = confirmReservation(s, key(1), at(1), limits).state;
    expect(expire(s, at(2 * HOUR - MIN), limits)).toBe(s);
    expect(expire(s, at(2 * HOUR + MIN), limits).rate).toEqual([]);
    const huge: LedgerLimits = { ...limits, maxWindowMs: 10 * MAX_WINDOW_MS };
    expect(expire(s, at(MAX_WINDOW_MS + 2 * MIN), huge).rate).toEqual([]);
  });
});

describe('losses', () => {
  it('counts a loss once per pod UID, by the time it happened', () => {
    const first = recordLoss(emptyState(), 'pod-1', at(0), at(5000), limits);
    expect(first.isNew).toBe(true);
    expect(recordLoss(first.state, 'pod-1', at(0), at(9000), limits)).toEqual({ state: first.state, isNew: false });
    const two = recordLoss(first.state, 'pod-2', at(1000), at(9000), limits, 2).state;
    expect(lossesWithin(two, 10 * MIN, at(9000))).toBe(3);
    expect(lossesWithin(two, 10 * MIN, at(12 * MIN))).toBe(0);
  });

  it('ignores a loss older than the longest window, so that a forgotten UID cannot come back fresh', () => {
    const s = recordLoss(emptyState(), 'pod-1', at(0), at(3 * HOUR), limits);
    expect(s.isNew).toBe(false);
    expect(s.state).toBe(emptyState());
  });

  it('keeps counting from the buckets when the UID records are evicted by the bound', () => {
    const l = small({ losses: 2 });
    let s = emptyState();
    for (let i = 0; i < 5; i++) s = recordLoss(s, `pod-${i}`, at(i), at(10), l).state;
    expect(s.losses).toHaveLength(2);
    expect(s.evictions.losses).toBe(3);
    expect(lossesWithin(s, 10 * MIN, at(10))).toBe(5);
  });

  it('forgets loss records past the longest window', () => {
    const s = recordLoss(emptyState(), 'pod-1', at(0), at(0), limits).state;
    const later = expire(s, at(2 * HOUR + 2 * MIN), limits);
    expect(later.losses).toEqual([]);
    expect(later.lossBuckets).toEqual([]);
  });
});

describe('expire', () => {
  it('returns the same state when nothing is due, and drops what is', () => {
    let s = holdRequested(emptyState(), key(1), 5, at(0), limits);
    s = recordEpisodeKey(s, key(1), at(0), limits).state;
    s = reserve(s, res(key(1)), at(0), limits);
    s = addProvenance(s, 'uid-a', at(0), limits);
    expect(expire(s, at(1000), limits)).toBe(s);
    const later = expire(s, at(HOUR + 1), limits);
    expect(later.held).toEqual([]);
    expect(later.episodeKeys).toEqual([]);
    expect(later.reservations).toEqual([]);
    expect(later.provenance).toHaveLength(1);
  });
});

describe('enforceBounds', () => {
  it('cuts a state with larger collections (a newer guard) down to the bounds, newest kept', () => {
    const big: AgentLedgerState = {
      ...emptyState(),
      episodeKeys: Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, at: T0 + i })),
      reservations: Array.from({ length: 4 }, (_, i) => ({
        key: `r${i}`,
        workload: 'w',
        steady: 1,
        addedInstances: 1,
        at: T0,
        expiresAt: T0 + MIN,
      })),
    };
    const cut = enforceBounds(big, small({ episodeKeys: 2, reservations: 1 }));
    expect(cut.episodeKeys.map((e) => e.key)).toEqual(['k3', 'k4']);
    expect(cut.evictions.episodeKeys).toBe(3);
    expect(cut.reservations.map((r) => r.key)).toEqual(['r3']);
    expect(rateUsed(cut, 5 * MIN, at(1))).toBe(4);
    expect(enforceBounds(cut, small({ episodeKeys: 2, reservations: 1 }))).toBe(cut);
  });
});

describe('serialisation', () => {
  const sample = (): AgentLedgerState => {
    let s = holdRequested(emptyState(), key(9), 9, at(0), limits);
    s = recordEpisodeKey(s, key(9), at(0), limits).state;
    s = addProvenance(s, 'uid-a', at(0), limits);
    s = reserve(s, res(key(9), 2), at(0), limits);
    s = reserve(s, res(key(8), 1), at(0), limits);
    s = confirmReservation(s, key(8), at(1), limits).state;
    s = recordLoss(s, 'pod-1', at(0), at(0), limits).state;
    return s;
  };

  it('round-trips a state through JSON with its version', () => {
    const s = sample();
    const text = serializeState(s);
    expect(JSON.parse(text)).toMatchObject({ version: 1 });
    expect(parseState(text)).toEqual({ state: s, problems: [], sourceVersion: 1 });
  });

  it('reads the known fields of a newer version and ignores the rest', () => {
    const v1 = JSON.parse(serializeState(sample())) as Record<string, unknown>;
    const v2 = {
      ...v1,
      version: 2,
      episodeStats: [{ minute: 1, overuse: 3 }],
      held: (v1.held as Record<string, unknown>[]).map((h) => ({ ...h, basis: 'requested' })),
    };
    const parsed = parseState(JSON.stringify(v2));
    expect(parsed.problems).toEqual([]);
    expect(parsed.sourceVersion).toBe(2);
    expect(parsed.state).toEqual(sample());
    // Written back in this code's version: the newer guard reads v1 the same way.
    expect(JSON.parse(serializeState(parsed.state))).toMatchObject({ version: 1 });
    expect(JSON.parse(serializeState(parsed.state))).not.toHaveProperty('episodeStats');
  });

  it('reads a minimal version 1 ledger with collections missing', () => {
    expect(parseState('{"version":1}')).toEqual({ state: emptyState(), problems: [], sourceVersion: 1 });
    expect(parseState(undefined).state).toBe(emptyState());
    expect(parseState('').problems).toEqual([]);
  });

  it('turns garbage into an empty state and a problem, never a throw', () => {
    for (const text of ['{', '[]', 'null', '"x"', '{"version":0}', '{"held":[]}', '{"version":"1"}', '{"version":1.5}']) {
      const parsed = parseState(text);
      expect(parsed.state).toBe(emptyState());
      expect(parsed.problems.length).toBeGreaterThan(0);
    }
  });

  it('drops unreadable entries one by one and says so', () => {
    const text = JSON.stringify({
      version: 1,
      held: [{ key: 'k', requested: 1, at: T0 }, { key: 'k2', requested: -1, at: T0 }, 'x'],
      episodeKeys: 'not a list',
      provenance: [{ uid: 'a"b', at: T0 }],
      rate: [{ minute: 5, instances: 1 }, { minute: 3, instances: 2 }],
      evictions: { held: 2, episodeKeys: 'many' },
    });
    const parsed = parseState(text);
    expect(parsed.state.held).toEqual([{ key: 'k', requested: 1, at: T0 }]);
    expect(parsed.state.provenance).toEqual([]);
    expect(parsed.state.rate.map((b) => b.minute)).toEqual([3, 5]);
    expect(parsed.state.evictions).toMatchObject({ held: 2, episodeKeys: 0 });
    expect(parsed.problems).toEqual([
      'held: 2 unreadable entries dropped',
      'episodeKeys: not a list; ignored',
      'provenance: 1 unreadable entry dropped',
    ]);
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ version: 1, held: v, rate: v }))), (text) => {
        const parsed = parseState(text);
        expect(parsed.state.version).toBe(1);
      }),
    );
  });

  it('round-trips any state the functions build, and keeps every collection within its bound', () => {
    const l = small({ held: 3, episodeKeys: 3, provenance: 3, reservations: 3, losses: 3, buckets: 5 });
    const op = fc.oneof(
      fc.record({ type: fc.constant('hold' as const), n: fc.nat(20), count: fc.nat(10) }),
      fc.record({ type: fc.constant('episode' as const), n: fc.nat(20) }),
      fc.record({ type: fc.constant('provenance' as const), n: fc.nat(20) }),
      fc.record({ type: fc.constant('reserve' as const), n: fc.nat(20), count: fc.nat(10) }),
      fc.record({ type: fc.constant('confirm' as const), n: fc.nat(20) }),
      fc.record({ type: fc.constant('loss' as const), n: fc.nat(20) }),
      fc.record({ type: fc.constant('expire' as const) }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(op, fc.nat(10 * MIN)), { maxLength: 60 }), (ops) => {
        let s = emptyState();
        let t = T0;
        for (const [o, dt] of ops) {
          t += dt;
          const now = new Date(t);
          const before = rateUsed(s, 5 * MIN, now);
          switch (o.type) {
            case 'hold':
              s = holdRequested(s, key(o.n), o.count, now, l);
              break;
            case 'episode':
              s = recordEpisodeKey(s, key(o.n), now, l).state;
              break;
            case 'provenance':
              s = addProvenance(s, `uid-${o.n}`, now, l);
              break;
            case 'reserve':
              s = reserve(s, res(key(o.n), o.count), now, l);
              break;
            case 'confirm':
              s = confirmReservation(s, key(o.n), now, l).state;
              // Confirming never hands allowance back.
              expect(rateUsed(s, 5 * MIN, now)).toBeGreaterThanOrEqual(before);
              break;
            case 'loss':
              s = recordLoss(s, `pod-${o.n}`, now, now, l).state;
              break;
            case 'expire':
              s = expire(s, now, l);
              break;
          }
        }
        expect(s.held.length).toBeLessThanOrEqual(3);
        expect(s.episodeKeys.length).toBeLessThanOrEqual(3);
        expect(s.provenance.length).toBeLessThanOrEqual(3);
        expect(s.reservations.length).toBeLessThanOrEqual(3);
        expect(s.losses.length).toBeLessThanOrEqual(3);
        expect(s.rate.length).toBeLessThanOrEqual(5);
        expect(parseState(serializeState(s), l)).toEqual({ state: s, problems: [], sourceVersion: 1 });
      }),
      { numRuns: 200 },
    );
  });
});

describe('size bound', () => {
  it('serialises the worst case (every collection full, longest ids, largest numbers) under 512 KiB', () => {
    const id = (i: number) => `#${String(i).padStart(40, 'x')}`; // 41 characters: the longest id parseState accepts
    const time = 8.64e15; // the largest Date
    const big = 2_147_483_647;
    const worst: AgentLedgerState = {
      version: 1,
      held: Array.from({ length: LEDGER_BOUNDS.held }, (_, i) => ({ key: id(i), requested: big, at: time })),
      episodeKeys: Array.from({ length: LEDGER_BOUNDS.episodeKeys }, (_, i) => ({ key: id(i), at: time })),
      provenance: Array.from({ length: LEDGER_BOUNDS.provenance }, (_, i) => ({ uid: id(i), at: time })),
      reservations: Array.from({ length: LEDGER_BOUNDS.reservations }, (_, i) => ({
        key: id(i),
        workload: id(i),
        steady: big,
        addedInstances: big,
        at: time,
        expiresAt: time,
      })),
      rate: Array.from({ length: LEDGER_BOUNDS.buckets }, (_, i) => ({ minute: time / MIN - LEDGER_BOUNDS.buckets + 1 + i, instances: Number.MAX_SAFE_INTEGER })),
      losses: Array.from({ length: LEDGER_BOUNDS.losses }, (_, i) => ({ uid: id(i), at: time })),
      lossBuckets: Array.from({ length: LEDGER_BOUNDS.buckets }, (_, i) => ({ minute: time / MIN - LEDGER_BOUNDS.buckets + 1 + i, instances: Number.MAX_SAFE_INTEGER })),
      evictions: {
        held: Number.MAX_SAFE_INTEGER,
        episodeKeys: Number.MAX_SAFE_INTEGER,
        provenance: Number.MAX_SAFE_INTEGER,
        reservations: Number.MAX_SAFE_INTEGER,
        rate: Number.MAX_SAFE_INTEGER,
        losses: Number.MAX_SAFE_INTEGER,
      },
      episodeBuckets: Array.from({ length: LEDGER_BOUNDS.episodeBuckets }, (_, i) => {
        const n = Number.MAX_SAFE_INTEGER;
        const basis = { overuse: n, growth: n, surplus: n };
        return { minute: time / MIN - LEDGER_BOUNDS.episodeBuckets + 1 + i, measured: n, needSum: n, fallback: n, unmeasured: n, requested: basis, admitted: basis };
      }),
      family: { instances: Number.MAX_SAFE_INTEGER, at: time },
      workloadNeeds: Array.from({ length: LEDGER_BOUNDS.workloadNeeds }, (_, i) => ({ workload: id(i), need: big, at: time })),
    };
    const text = serializeState(worst);
    expect(Buffer.byteLength(text)).toBeLessThan(512 * 1024);
    // It is a state the parser accepts as it is: the worst case is reachable, not a strawman.
    const parsed = parseState(text);
    expect(parsed.problems).toEqual([]);
    // (compared as a boolean: a failure message holding 400 KiB of JSON helps nobody)
    expect(serializeState(parsed.state) === text).toBe(true);
  });

  it('stays within the bounds when the functions are driven far past them', () => {
    let s = emptyState();
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const now = at(i * 1000);
      s = holdRequested(s, key(i), i, now, limits);
      s = recordEpisodeKey(s, key(i), now, limits).state;
      s = addProvenance(s, `uid-${i}`, now, limits);
      s = reserve(s, res(key(i), 1), now, limits);
      s = recordLoss(s, `pod-${i}`, now, now, limits).state;
    }
    expect(s.held).toHaveLength(LEDGER_BOUNDS.held);
    expect(s.episodeKeys).toHaveLength(LEDGER_BOUNDS.episodeKeys);
    expect(s.provenance).toHaveLength(LEDGER_BOUNDS.provenance);
    expect(s.reservations.length).toBeLessThanOrEqual(LEDGER_BOUNDS.reservations);
    expect(s.losses).toHaveLength(LEDGER_BOUNDS.losses);
    expect(Buffer.byteLength(serializeState(s))).toBeLessThan(512 * 1024);
  });
});

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

describe('justification', () => {
  it('keeps the hash of the last recorded growth, round-trips it, and reads a bad one as none', () => {
    const now = new Date('2026-12-05T08:00:00Z');
    const state = recordJustification(emptyState(), 'abc123', now);
    expect(recordJustification(state, 'abc123', now)).toBe(state);
    expect(isEmptyState(state)).toBe(false);
    expect(parseState(serializeState(state)).state.justification).toEqual({ hash: 'abc123', at: now.getTime() });
    const bad = parseState(JSON.stringify({ version: 1, justification: { hash: 'NOT HEX', at: 1 } }));
    expect(bad.state.justification).toBeUndefined();
    expect(bad.problems).toEqual(['justification: unreadable; ignored']);
  });
});
