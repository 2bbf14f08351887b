import { describe, expect, it } from 'vitest';
import { expire, recordLoss } from '../src/core/ledger-state.ts';
import { AGENT, review, scaleReview } from './helpers/fixtures.ts';
import { testGuard as guard, policy } from './helpers/guard.ts';

// The rate window and survival pressure through the whole request path, on the embedded
// default's in-memory ledger (the shared ledger is exercised in two-guards-admission).

const scale = (name: string, from: number, to: number) => scaleReview(name, from, to);

describe('rate window', () => {
  it('stops doubling: 1 → 2 → 4 → 8 within the window', async () => {
    const g = guard({
      policies: policy('rate', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { rate: { instances: 4, per: '5m' } } }),
    });
    expect((await g.review('validate', scale('web', 1, 2))).allowed).toBe(true);
    expect((await g.review('validate', scale('web', 2, 4))).allowed).toBe(true);
    const third = await g.review('validate', scale('web', 4, 8));
    expect(third.allowed).toBe(false);
    expect(third.status?.message).toMatch(/allows at most 5 \(rate 4 instances per 5m, 3 used\)/);
    expect(third.auditAnnotations).toMatchObject({ limit: 'rate' });
    // Another workload of the same agent shares the family's window.
    expect((await g.review('validate', scale('api', 1, 3))).allowed).toBe(false);
    expect((await g.review('validate', scale('api', 1, 2))).allowed).toBe(true);
  });

  it('gives the allowance back once the window has passed', async () => {
    const g = guard({
      policies: policy('rate', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { rate: { instances: 2, per: '1m' } } }),
    });
    expect((await g.review('validate', scale('web', 1, 3))).allowed).toBe(true);
    expect((await g.review('validate', scale('web', 3, 4))).allowed).toBe(false);
    g.clock.advance(3 * 60_000);
    expect((await g.review('validate', scale('web', 3, 4))).allowed).toBe(true);
  });

  it('spends nothing on a dry run or a denial', async () => {
    const g = guard({
      policies: policy('rate', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { rate: { instances: 2, per: '5m' } } }),
    });
    expect((await g.review('validate', review('deployment-scale-agent-10', { oldReplicas: 1, replicas: 3, dryRun: true }))).allowed).toBe(true);
    expect((await g.review('validate', scale('web', 1, 9))).allowed).toBe(false);
    expect((await g.review('validate', scale('web', 1, 3))).allowed).toBe(true);
  });
});

describe('survival pressure', () => {
  const pressured = policy('pressure', {
    mode: 'enforce',
    need: { onUnavailable: 'caps' },
    limits: { perWorkload: 10, step: 3 },
    underPressure: { window: '10m', limits: { step: 0 } },
  });

  it('tightens the limits after the family lost instances, and only within the window', async () => {
    const g = guard({ policies: pressured });
    expect((await g.review('validate', scale('web', 2, 4))).allowed).toBe(true);
    await g.ledger.transact(AGENT, (s) => ({
      result: undefined,
      next: recordLoss(expire(s, g.clock.now(), g.ledger.limits), 'pod-uid-1', g.clock.now(), g.clock.now(), g.ledger.limits).state,
    }));
    const pressed = await g.review('validate', scale('web', 4, 5));
    expect(pressed.allowed).toBe(false);
    expect(pressed.status?.message).toMatch(/allows at most 4 \(4 \+ step 0\)/);
    g.clock.advance(11 * 60_000);
    expect((await g.review('validate', scale('web', 4, 5))).allowed).toBe(true);
  });
});
