import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ledgerConfigMapName } from '../../src/cluster/kube-ledger.ts';
import { parseState } from '../../src/core/ledger-state.ts';
import type { AssembledGuard } from '../../src/guard.ts';
import { FakeApiServer } from '../fake-apiserver/fake-apiserver.ts';
import { ROOMY_POLICY, startClusterGuards } from '../helpers/cluster-guards.ts';
import { AGENT, type Review, scaleReview } from '../helpers/fixtures.ts';
import { metricValue } from '../helpers/telemetry.ts';

// What each kind of decision costs the API server in ledger calls: only what a decision
// records is written, growth within the replica's allowance lease is written after its
// answer, and a decision that records nothing reads from the replica's last state. The
// calls are counted at the API server.

let fake: FakeApiServer;
let dir: string;
let guard: AssembledGuard;
let closed = false;
const CM = ledgerConfigMapName(AGENT);

beforeAll(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  dir = await mkdtemp(join(tmpdir(), 'rg-admission-writes-'));
  // Beside the helper's roomy enforce policy, a clamp policy as roomy: the mutating calls
  // below are decided (no clamp policy, they would be answered without a decision).
  await writeFile(join(dir, 'roomy-clamp.yaml'), ROOMY_POLICY.replace('name: roomy', 'name: roomy-clamp').replace('mode: enforce', 'mode: clamp'));
  // A housekeeping round would write between the requests counted here: not within this test.
  [guard] = (await startClusterGuards(fake.url, dir, ['guard-a'], { ledger: { housekeepingInterval: '1m', readCacheTtl: '10s' } })) as [AssembledGuard];
}, 30_000);
afterAll(async () => {
  if (!closed) await guard.close();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function send(webhook: 'mutate' | 'validate', body: Review): Promise<boolean> {
  const payload = { ...body, request: { ...body.request, uid: `${body.request.uid}-${n++}` } };
  const res = await guard.app.webhook.inject({ method: 'POST', url: `/${webhook}?timeout=10s`, payload });
  expect(res.statusCode).toBe(200);
  return (res.json() as { response: { allowed: boolean } }).response.allowed;
}

const stored = () => {
  const data = fake.get('configmaps', 'replica-guard', CM)?.data as Record<string, string> | undefined;
  return parseState(data?.state).state;
};
const storedKeys = () => stored().episodeKeys.length;
const ledgerCalls = () => fake.requests.filter((r) => r.includes(`/configmaps/${CM}`)).map((r) => r.split(' ')[0]);

describe('ledger calls per decision on a cluster', () => {
  it('writes the first growth before its answer and takes an allowance lease with it; nothing for a scale-down or a mutating call that does not clamp', async () => {
    expect(await send('validate', scaleReview('web', 1, 2))).toBe(true);
    expect(storedKeys()).toBe(1);
    // The roomy policy bounds neither the rate nor the family: the lease is the default maximum.
    expect(stored().leases?.map((l) => l.instances)).toEqual([8]);
    fake.requests.length = 0;

    expect(await send('mutate', scaleReview('web', 2, 3))).toBe(true);
    expect(await send('validate', scaleReview('web', 3, 2))).toBe(true);
    expect(await send('mutate', scaleReview('web', 3, 2))).toBe(true);
    expect(ledgerCalls()).toEqual([]);
    // Both mutating calls were decided, from the state this replica last wrote.
    expect(await metricValue(guard.metrics, 'replica_guard_admission_duration_seconds_count', { webhook: 'mutate', path: 'agent' })).toBe(2);
  });

  it('answers growth within the lease before writing it, then writes it and tops the lease up in one PUT', async () => {
    fake.requests.length = 0;
    // A slow API server: the answer comes before the write could have.
    fake.setLatency(300);
    expect(await send('validate', scaleReview('web', 2, 3))).toBe(true);
    expect(storedKeys()).toBe(1);
    fake.setLatency(0);
    await expect.poll(storedKeys, { timeout: 5000 }).toBe(2);
    expect(ledgerCalls()).toEqual(['PUT']);
    expect(stored().reservations.map((r) => r.addedInstances)).toContain(1);
    expect(stored().leases?.map((l) => l.instances)).toEqual([8]);
  });

  it('decides growth the lease cannot cover through the ledger, before its answer', async () => {
    fake.requests.length = 0;
    expect(await send('validate', scaleReview('web', 3, 20))).toBe(true);
    expect(ledgerCalls()).toEqual(['PUT']);
    expect(storedKeys()).toBe(3);
  });

  it('reads first when another writer changed the ledger since, and still records once', async () => {
    const object = fake.get('configmaps', 'replica-guard', CM);
    if (!object) throw new Error('no ledger ConfigMap');
    // Another replica's write: a new resourceVersion the cached state does not carry.
    fake.put('configmaps', { ...object, metadata: { ...object.metadata, annotations: { touched: 'by another replica' } } });
    fake.requests.length = 0;
    expect(await send('validate', scaleReview('web', 20, 40))).toBe(true);
    expect(ledgerCalls()).toEqual(['PUT', 'GET', 'PUT']);
    expect(storedKeys()).toBe(4);
  });

  it('answers a denial before its episode is written, writes the episode right after, and gives the lease back on close', async () => {
    fake.requests.length = 0;
    const keysBefore = storedKeys();
    fake.setLatency(300);
    expect(await send('validate', scaleReview('web', 40, 500))).toBe(false);
    expect(storedKeys()).toBe(keysBefore);
    fake.setLatency(0);
    // The record follows the answer: one PUT adds the episode's key.
    await expect.poll(storedKeys, { timeout: 5000 }).toBe(keysBefore + 1);
    expect(ledgerCalls()).toEqual(['PUT']);
    // The same denial again (an agent's retry) is the same episode: nothing more is written.
    expect(await send('validate', scaleReview('web', 40, 500))).toBe(false);
    expect(stored().leases).toHaveLength(1);
    // Closing waits for the records queued after their answers, and returns the lease.
    closed = true;
    await guard.close();
    expect(storedKeys()).toBe(keysBefore + 1);
    expect(stored().leases).toBeUndefined();
  });
});
