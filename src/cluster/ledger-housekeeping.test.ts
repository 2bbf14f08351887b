import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addProvenance,
  type AgentLedgerState,
  DEFAULT_LEDGER_LIMITS,
  emptyState,
  rateUsed,
  reserve,
  reservedInstances,
} from '../core/ledger-state.ts';
import type { AgentIdentity, WorkloadSnapshot } from '../core/types.ts';
import { InMemoryClusterView } from './in-memory-view.ts';
import { housekept } from './ledger-housekeeping.ts';

// Decisions read housekeeping without writing it, and the housekeeper writes it later: a
// decision must see the same state either way. So housekeeping must be idempotent (what
// the housekeeper wrote, housekept again, is what the decision computed), and it must only
// move growth from pending to the rate, never lose it while the reservation is live.

const agent: AgentIdentity = { username: 'system:serviceaccount:agents:a', serviceAccount: { namespace: 'agents', name: 'a' } };
const T0 = Date.parse('2026-12-05T12:00:00Z');
const limits = DEFAULT_LEDGER_LIMITS;
const UIDS = ['u0', 'u1', 'u2', 'u3', 'u4'];

function snapshot(uid: string, steady: number, runsAsAgent: boolean): WorkloadSnapshot {
  return {
    ref: { group: 'apps', kind: 'Deployment', namespace: 'agents', name: uid, uid },
    count: { steady, extra: { type: 'none' } },
    serviceAccounts: [runsAsAgent ? 'a' : 'other'],
    fingerprints: [],
  };
}

const growth: fc.Arbitrary<Growth> = fc.record({
  uid: fc.constantFrom(...UIDS),
  steady: fc.integer({ min: 1, max: 6 }),
  added: fc.integer({ min: 1, max: 3 }),
  atMs: fc.integer({ min: 0, max: 5 * 60_000 }),
  provenance: fc.boolean(),
});
const shown = fc.record({ uid: fc.constantFrom(...UIDS), steady: fc.integer({ min: 0, max: 6 }), runsAsAgent: fc.boolean() });

interface Growth {
  readonly uid: string;
  readonly steady: number;
  readonly added: number;
  readonly atMs: number;
  readonly provenance: boolean;
}

function stateOf(growths: readonly Growth[]): AgentLedgerState {
  let state = emptyState();
  for (const [i, g] of growths.entries()) {
    const at = new Date(T0 + g.atMs);
    state = reserve(state, { key: `k${i}`, workload: g.uid, steady: g.steady, addedInstances: g.added }, at, limits);
    if (g.provenance) state = addProvenance(state, g.uid, at, limits);
  }
  return state;
}

describe('ledger housekeeping', () => {
  it('is idempotent, and moves live growth from pending to the rate without losing any', () => {
    fc.assert(
      fc.property(
        fc.array(growth, { maxLength: 12 }),
        fc.array(shown, { maxLength: 8 }),
        fc.integer({ min: 0, max: 8 * 60_000 }),
        (growths, views, laterMs) => {
          const ordered = [...growths].sort((a, b) => a.atMs - b.atMs);
          const state = stateOf(ordered);
          const view = new InMemoryClusterView([]);
          for (const v of views) view.observe(snapshot(v.uid, 0, v.runsAsAgent).ref, snapshot(v.uid, v.steady, v.runsAsAgent));
          const now = new Date(T0 + 5 * 60_000 + laterMs);
          const once = housekept(state, agent, view, now, limits);
          expect(housekept(once, agent, view, now, limits)).toEqual(once);
          // Every live reservation is still pending or now charged to the rate: the rate a
          // decision reads is never lower after housekeeping than before it.
          const window = 24 * 3_600_000;
          expect(rateUsed(once, window, now)).toBeGreaterThanOrEqual(rateUsed(state, window, now));
          expect(reservedInstances(once, now)).toBeLessThanOrEqual(reservedInstances(state, now));
        },
      ),
      { numRuns: 300 },
    );
  });
});
