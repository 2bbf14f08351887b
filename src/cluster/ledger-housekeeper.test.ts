import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { capturingLogger, testClock } from '../../test/helpers/telemetry.ts';
import { addProvenance, rateUsed, reserve } from '../core/ledger-state.ts';
import type { AgentIdentity, WorkloadSnapshot } from '../core/types.ts';
import { InMemoryLedger } from './in-memory-ledger.ts';
import { InMemoryClusterView } from './in-memory-view.ts';
import { createLedgerMetrics, type Ledger } from './ledger.ts';
import { LedgerHousekeeper } from './ledger-housekeeper.ts';

const agent: AgentIdentity = { username: 'system:serviceaccount:agents:a', serviceAccount: { namespace: 'agents', name: 'a' } };
const HOUR = 3_600_000;

function workload(uid: string, steady: number): WorkloadSnapshot {
  return {
    ref: { group: 'apps', kind: 'Deployment', namespace: 'agents', name: uid, uid },
    count: { steady, extra: { type: 'none' } },
    serviceAccounts: ['other'],
    fingerprints: [],
  };
}

function setUp(ledger?: Ledger) {
  const clock = testClock();
  const view = new InMemoryClusterView([]);
  const real = new InMemoryLedger({ windowMs: HOUR, maxEpisodes: 0 });
  const metrics = createLedgerMetrics(new Registry());
  const { logger, lines } = capturingLogger();
  const used = ledger ?? real;
  const housekeeper = new LedgerHousekeeper({ ledger: used, view, clock, logger, metrics });
  // Growth of u1 from 2 to 3 admitted and reserved, as a decision records it.
  const admit = () =>
    real.transact(agent.username, (s) => ({
      result: undefined,
      next: addProvenance(reserve(s, { key: 'k1', workload: 'u1', steady: 3, addedInstances: 1 }, clock.now(), real.limits), 'u1', clock.now(), real.limits),
    }));
  const state = () => real.transact(agent.username, (s) => ({ result: s, next: undefined }));
  return { clock, view, ledger: real, metrics, lines, housekeeper, admit, state };
}

describe('LedgerHousekeeper', () => {
  it('writes the confirmation of growth the view now shows, charging it to the rate, and then lets the agent go', async () => {
    const { view, housekeeper, admit, state, clock } = setUp();
    await admit();
    housekeeper.touched(agent);
    await housekeeper.runOnce();
    // The view does not show the growth yet: the reservation waits, and so does the agent.
    expect((await state()).reservations).toHaveLength(1);
    expect(housekeeper.pending).toBe(1);

    view.observe(workload('u1', 0).ref, workload('u1', 3));
    await housekeeper.runOnce();
    const after = await state();
    expect(after.reservations).toHaveLength(0);
    expect(rateUsed(after, HOUR, clock.now())).toBe(1);
    expect(housekeeper.pending).toBe(0);
  });

  it('releases growth the view never showed once its reservation times out', async () => {
    const { view, housekeeper, admit, state, clock } = setUp();
    await admit();
    view.observe(workload('u1', 0).ref, workload('u1', 2));
    housekeeper.touched(agent);
    clock.advance(3 * 60_000);
    await housekeeper.runOnce();
    const after = await state();
    expect(after.reservations).toHaveLength(0);
    expect(rateUsed(after, HOUR, clock.now())).toBe(0);
    expect(housekeeper.pending).toBe(0);
  });

  it('keeps an agent whose housekeeping failed for the next round, and says why', async () => {
    class UnreachableLedger extends InMemoryLedger {
      override transact<T>(): Promise<T> {
        return Promise.reject(new Error('the API server is unreachable'));
      }
    }
    const { housekeeper, metrics, lines } = setUp(new UnreachableLedger({ windowMs: HOUR, maxEpisodes: 0 }));
    housekeeper.touched(agent);
    await housekeeper.runOnce();
    expect(housekeeper.pending).toBe(1);
    expect((await metrics.housekeeping.get()).values.find((v) => v.labels.outcome === 'error')?.value).toBe(1);
    expect(lines.some((l) => String(l.msg).includes('ledger housekeeping failed') && l.err !== undefined)).toBe(true);
  });

  it('joins a round in flight rather than starting a second one', async () => {
    const { housekeeper, admit } = setUp();
    await admit();
    housekeeper.touched(agent);
    const first = housekeeper.runOnce();
    expect(housekeeper.runOnce()).toBe(first);
    await first;
  });
});
