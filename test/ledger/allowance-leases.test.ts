import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyEpisodeRecord, type EpisodeRecord } from '../../src/admission/episode-record.ts';
import type { Clock } from '../../src/clock.ts';
import { AllowanceLeases, type LeaseRoom, type LeaseSpend } from '../../src/cluster/allowance-leases.ts';
import { KubeLedger, ledgerConfigMapName } from '../../src/cluster/kube-ledger.ts';
import { createLedgerMetrics, type LedgerStep } from '../../src/cluster/ledger.ts';
import { parseState, rateUsed } from '../../src/core/ledger-state.ts';
import { growthRecord } from '../helpers/ledger-state-fixtures.ts';
import { FakeApiServer } from '../fake-apiserver/fake-apiserver.ts';

// Allowance leases on the fake API server, where faults can be injected: growth answered
// from a lease is never lost when its write fails, and a lease left by a replica that
// died is charged to the rate when it expires.

const AGENT = 'system:serviceaccount:agents:agent-1';
const CAP = 10;
const WINDOW = 5 * 60_000;

let fake: FakeApiServer;
beforeEach(async () => {
  fake = await FakeApiServer.start();
});
afterEach(async () => {
  fake.intercept(undefined);
  await fake.close();
});

/** The real clock, moved forward by `offsetMs`: a replica whose time runs on. */
const shifted = () => {
  const clock = { offsetMs: 0, now: () => new Date(Date.now() + clock.offsetMs), monotonicMs: () => performance.now() + clock.offsetMs };
  return clock satisfies Clock;
};

interface Decided {
  readonly admitted: boolean;
  readonly record: EpisodeRecord | undefined;
}
const room: LeaseRoom = (state, now) => CAP - rateUsed(state, WINDOW, now);
let n = 0;
/** A decision step under a rate cap of 10 per 5 minutes, growing one workload by `instances`. */
const grow =
  (clock: Clock, instances: number): LedgerStep<Decided> =>
  (state) => {
    const now = clock.now();
    if (rateUsed(state, WINDOW, now) + instances > CAP) return { result: { admitted: false, record: undefined }, next: undefined };
    const key = `growth-${n++}`;
    const record = growthRecord(key, instances, now);
    return { result: { admitted: true, record }, next: applyEpisodeRecord(state, record, { windowMs: 3_600_000, maxWindowMs: 3_600_000, reservationTtlMs: 3_600_000 }).state };
  };
const spendOf = (d: Decided): LeaseSpend | undefined => (d.record ? { record: d.record, spent: d.record.growth?.reservation.addedInstances ?? 0, room } : undefined);

function replica(name: string, clock: Clock, registry = new Registry(), writeDelayMs?: number) {
  const metrics = createLedgerMetrics(registry);
  const ledger = new KubeLedger({ connection: { baseUrl: fake.url }, namespace: 'replica-guard', clock, metrics, requestTimeoutMs: 500, roundTimeoutMs: 1000, maxAttempts: 2 });
  const leases = new AllowanceLeases({ ledger, holder: name, clock, logger: pino({ level: 'silent' }), metrics, writeDelayMs });
  return { ledger, leases, registry };
}
const stored = () => {
  const data = fake.get('configmaps', 'replica-guard', ledgerConfigMapName(AGENT))?.data as Record<string, string> | undefined;
  return parseState(data?.state).state;
};

describe('allowance leases on an API server', () => {
  it('keep growth answered from a lease when its write fails, and write it once the API server answers again', async () => {
    const clock = shifted();
    const a = replica('guard-a', clock);
    const first = await a.leases.decide(AGENT, grow(clock, 1), spendOf);
    expect(first.result.admitted).toBe(true);
    expect(first.written).toBeUndefined();
    expect(stored().leases?.map((l) => l.instances)).toEqual([4]);

    fake.intercept((req) => (req.method === 'PUT' ? { status: 503, reason: 'ServiceUnavailable' } : undefined));
    const second = await a.leases.decide(AGENT, grow(clock, 2), spendOf);
    expect(second.result.admitted).toBe(true);
    let written: boolean | undefined | 'waiting' = 'waiting';
    void second.written?.then((w) => {
      written = w?.isNew;
    });
    await expect.poll(async () => (await a.registry.getSingleMetricAsString('replica_guard_ledger_lease_writes_total')).includes('outcome="error"')).toBe(true);
    expect(written).toBe('waiting');
    expect(stored().reservations).toHaveLength(1);

    fake.intercept(undefined);
    await a.leases.tidy();
    await expect.poll(() => written).toBe(true);
    expect(stored().reservations.map((r) => r.addedInstances)).toEqual([1, 2]);
    await a.leases.close();
    expect(stored().leases).toBeUndefined();
    expect(rateUsed(stored(), WINDOW, clock.now())).toBe(3);
  });

  it('write what waits behind the lease at once when a decision must go through the ledger, never after the delay', async () => {
    const clock = shifted();
    // A delay no test waits out: only a write started early lets this test finish.
    const a = replica('guard-a', clock, new Registry(), 600_000);
    expect((await a.leases.decide(AGENT, grow(clock, 1), spendOf)).result.admitted).toBe(true);
    const fromLease = await a.leases.decide(AGENT, grow(clock, 2), spendOf);
    expect(fromLease.written).toBeDefined();
    expect(stored().reservations.map((r) => r.addedInstances)).toEqual([1]);
    // 3 more do not fit in the 2 the lease has left: through the ledger, after the write behind.
    const through = await a.leases.decide(AGENT, grow(clock, 3), spendOf);
    expect(through.result.admitted).toBe(true);
    expect(through.written).toBeUndefined();
    expect((await fromLease.written)?.isNew).toBe(true);
    expect(stored().reservations.map((r) => r.addedInstances)).toEqual([1, 2, 3]);
    const last = await a.leases.decide(AGENT, grow(clock, 1), spendOf);
    expect(last.written).toBeDefined();
    // Closing writes it too, without the delay.
    await a.leases.close();
    expect((await last.written)?.isNew).toBe(true);
    expect(stored().leases).toBeUndefined();
    expect(rateUsed(stored(), WINDOW, clock.now())).toBe(7);
  });

  it("charge a dead replica's lease to the rate once it expires, so what it may have admitted stays counted", async () => {
    const clockA = shifted();
    const a = replica('guard-a', clockA);
    expect((await a.leases.decide(AGENT, grow(clockA, 1), spendOf)).result.admitted).toBe(true);
    // Spent from the lease and never written: the replica dies before its write.
    fake.intercept((req) => (req.method === 'PUT' ? { status: 503 } : undefined));
    expect((await a.leases.decide(AGENT, grow(clockA, 4), spendOf)).written).toBeDefined();
    await expect.poll(async () => (await a.registry.getSingleMetricAsString('replica_guard_ledger_lease_writes_total')).includes('outcome="error"')).toBe(true);
    fake.intercept(undefined);
    expect(stored().leases?.map((l) => l.instances)).toEqual([4]);
    expect(stored().reservations).toHaveLength(1);

    const clockB = shifted();
    const b = replica('guard-b', clockB);
    // While the lease lives, B counts it: 1 written + 4 leased, so 6 more would pass the cap of 10.
    expect((await b.leases.decide(AGENT, grow(clockB, 6), spendOf)).result.admitted).toBe(false);
    // Past its expiry B charges it to the rate: still counted.
    clockB.offsetMs = 31_000;
    expect((await b.leases.decide(AGENT, grow(clockB, 6), spendOf)).result.admitted).toBe(false);
    expect((await b.leases.decide(AGENT, grow(clockB, 5), spendOf)).result.admitted).toBe(true);
    await b.leases.close();
    expect(stored().leases).toBeUndefined();
    expect(rateUsed(stored(), WINDOW, clockB.now())).toBe(10);
  });
});
