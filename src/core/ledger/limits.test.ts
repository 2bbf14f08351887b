import { describe, expect, it } from 'vitest';
import { at, key, limits, MIN, res } from '../../../test/helpers/ledger-state-fixtures.ts';
import { recordEpisodeKey } from './episode-keys.ts';
import { holdRequested } from './held-requests.ts';
import { setLease } from './leases.ts';
import { LEDGER_BOUNDS } from './limits.ts';
import { recordLoss } from './losses.ts';
import { parseState } from './parse.ts';
import { addProvenance } from './provenance.ts';
import { reserve } from './reservations.ts';
import { serializeState } from './serialize.ts';
import { type AgentLedgerState, emptyState } from './state.ts';

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
        leases: Number.MAX_SAFE_INTEGER,
      },
      episodeBuckets: Array.from({ length: LEDGER_BOUNDS.episodeBuckets }, (_, i) => {
        const n = Number.MAX_SAFE_INTEGER;
        const basis = { overuse: n, growth: n, surplus: n };
        return { minute: time / MIN - LEDGER_BOUNDS.episodeBuckets + 1 + i, measured: n, needSum: n, fallback: n, unmeasured: n, requested: basis, admitted: basis };
      }),
      family: { instances: Number.MAX_SAFE_INTEGER, at: time },
      workloadNeeds: Array.from({ length: LEDGER_BOUNDS.workloadNeeds }, (_, i) => ({ workload: id(i), need: big, at: time })),
      leases: Array.from({ length: LEDGER_BOUNDS.leases }, (_, i) => ({
        holder: `${'h'.repeat(120)}-${String(i).padStart(5, '0')}`,
        instances: big,
        at: time,
        expiresAt: time,
      })),
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
      s = setLease(s, `replica-${i}`, 1, now, 60_000, limits);
    }
    expect(s.held).toHaveLength(LEDGER_BOUNDS.held);
    expect(s.episodeKeys).toHaveLength(LEDGER_BOUNDS.episodeKeys);
    expect(s.provenance).toHaveLength(LEDGER_BOUNDS.provenance);
    expect(s.reservations.length).toBeLessThanOrEqual(LEDGER_BOUNDS.reservations);
    expect(s.losses).toHaveLength(LEDGER_BOUNDS.losses);
    expect(s.leases).toHaveLength(LEDGER_BOUNDS.leases);
    expect(Buffer.byteLength(serializeState(s))).toBeLessThan(512 * 1024);
  });
});
