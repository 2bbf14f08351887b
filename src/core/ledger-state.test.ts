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
  expire,
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
  recordLoss,
  releaseExpired,
  requestedFor,
  reserve,
  reservedInstances,
  serializeState,
} from './ledger-state.ts';

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
