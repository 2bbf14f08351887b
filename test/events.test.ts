import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeEventRecorder } from '../src/cluster/event-recorder.ts';
import { FakeApiServer } from './fake-apiserver/fake-apiserver.ts';
import { review, scaleReview } from './helpers/fixtures.ts';
import { policy, type TestGuard, testGuard } from './helpers/guard.ts';
import { parseExposition } from './helpers/telemetry.ts';

// Denials and clamps become Kubernetes Events, written through the API off the request
// path, at most 10 per agent per minute, never for a dry run.

let fake: FakeApiServer;
let guard: TestGuard;
let recorder: KubeEventRecorder;
let registry: Registry;

beforeEach(async () => {
  fake = await FakeApiServer.start();
  registry = new Registry();
  guard = testGuard({
    policies: policy('cap', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { perWorkload: 4 } }),
    events: (clock, logger) => {
      recorder = new KubeEventRecorder({ connection: { baseUrl: fake.url }, clock, logger, registry });
      return recorder;
    },
  });
});
afterEach(async () => {
  await guard.close();
  await fake.close();
});

interface EventBody {
  involvedObject: { kind: string; name: string; namespace: string; uid?: string };
  reason: string;
  message: string;
  type: string;
}

async function events(): Promise<EventBody[]> {
  const res = await fetch(`${fake.url}/api/v1/namespaces/agents/events`);
  return ((await res.json()) as { items: EventBody[] }).items;
}

describe('decision Events', () => {
  it('are written asynchronously: the answer does not wait for the API', async () => {
    fake.setLatency(400);
    const started = performance.now();
    const answer = await guard.review('validate', scaleReview('web', 3, 10));
    expect(answer.allowed).toBe(false);
    expect(performance.now() - started).toBeLessThan(400);
    fake.setLatency(0);
    await recorder.flushed();
    const [event] = await events();
    expect(event).toMatchObject({
      involvedObject: { kind: 'Deployment', name: 'web', namespace: 'agents', uid: 'uid-web' },
      reason: 'GrowthDenied',
      type: 'Warning',
    });
    expect(event?.message).toContain('system:serviceaccount:agents:agent-1: replica-guard denied scaling Deployment agents/web from 3 to 10');
  });

  it("go on the agent's ServiceAccount for a denied CREATE, never for a dry run", async () => {
    await guard.review('validate', review('deployment-create-agent', { replicas: 9 }));
    await guard.review('validate', review('deployment-create-agent', { replicas: 9, dryRun: true }));
    await recorder.flushed();
    const all = await events();
    expect(all.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name}`)).toEqual(['ServiceAccount/agent-1']);
  });

  it('are at most 10 per agent per minute, the rest counted', async () => {
    for (let i = 0; i < 15; i++) await guard.review('validate', scaleReview(`web-${i}`, 3, 10));
    await recorder.flushed();
    expect(await events()).toHaveLength(10);
    const samples = parseExposition(await registry.metrics());
    expect(samples).toContainEqual({ name: 'replica_guard_events_total', labels: { outcome: 'sent' }, value: 10 });
    expect(samples).toContainEqual({ name: 'replica_guard_events_total', labels: { outcome: 'rate_limited' }, value: 5 });
    guard.clock.advance(60_000);
    await guard.review('validate', scaleReview('web-late', 3, 10));
    await recorder.flushed();
    expect(await events()).toHaveLength(11);
  });
});
