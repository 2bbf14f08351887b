import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main.ts';
import { snapshotName } from '../../src/cluster/shutdown-run.ts';
import { SWITCH_CONFIGMAP } from '../../src/cluster/switch-store.ts';
import type { AssembledGuard } from '../../src/guard.ts';
import { FakeApiServer } from '../fake-apiserver/fake-apiserver.ts';
import { scaleReview } from '../helpers/fixtures.ts';
import { startClusterGuards } from '../helpers/cluster-guards.ts';
import { writeKubeconfig } from '../helpers/kubeconfig.ts';
import { deployment, ownerOf, pod, podTemplate, replicaSet } from '../view/view-helpers.ts';

// Quick shutdown and exact restore of an agent's family, with the operator's kubeconfig,
// while two guard replicas acknowledge the freeze. Every step is an API call a real
// server answers the same way (the scale subresource, compare-and-swap updates, an
// immutable snapshot ConfigMap).

let fake: FakeApiServer;
let dir: string;
let kubeconfig: string;
let guards: AssembledGuard[] = [];

/** The family of agents:agent-1 (and one workload of someone else). */
const FAMILY: readonly (readonly [string, string])[] = [
  ['deployments', 'web'],
  ['replicasets', 'web-1'],
  ['statefulsets', 'db'],
  ['horizontalpodautoscalers', 'web-hpa'],
  ['cronjobs', 'nightly'],
  ['jobs', 'nightly-1'],
  ['daemonsets', 'node-agent'],
  ['pods', 'loose-1'],
  ['pods', 'loose-2'],
  ['pods', 'web-1-a'],
  ['deployments', 'other'],
];

function seed(): void {
  const web = fake.put('deployments', deployment('agents', 'web', 3));
  const rs = fake.put('replicasets', replicaSet('agents', 'web-1', 3, ownerOf(web, 'Deployment')));
  fake.put('pods', pod('agents', 'web-1-a', ownerOf(rs, 'ReplicaSet')));
  fake.put('statefulsets', { metadata: { namespace: 'agents', name: 'db' }, spec: { replicas: 2, serviceName: 'db', template: podTemplate('agent-1') } });
  fake.put('horizontalpodautoscalers', {
    metadata: { namespace: 'agents', name: 'web-hpa', labels: { team: 'a' } },
    spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, minReplicas: 2, maxReplicas: 5 },
  });
  const cron = fake.put('cronjobs', {
    metadata: { namespace: 'agents', name: 'nightly' },
    spec: { schedule: '0 1 * * *', suspend: false, jobTemplate: { spec: { template: podTemplate('agent-1') } } },
  });
  fake.put('jobs', { metadata: { namespace: 'agents', name: 'nightly-1', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: cron.metadata.uid, controller: true }] }, spec: { parallelism: 2, template: podTemplate('agent-1') } });
  fake.put('daemonsets', { metadata: { namespace: 'agents', name: 'node-agent' }, spec: { template: { ...podTemplate('agent-1'), spec: { ...podTemplate('agent-1').spec, nodeSelector: { disk: 'ssd' } } } } });
  fake.put('pods', pod('agents', 'loose-1', undefined));
  fake.put('pods', pod('agents', 'loose-2', undefined));
  fake.put('deployments', deployment('agents', 'other', 4, 'someone-else'));
}

/** What each object of FAMILY looks like now (spec and labels), `gone` when deleted. */
function state(): Record<string, unknown> {
  return Object.fromEntries(
    FAMILY.map(([resource, name]) => {
      const o = fake.get(resource, 'agents', name);
      return [`${resource}/${name}`, o ? { spec: o.spec, labels: o.metadata.labels } : 'gone'];
    }),
  );
}

async function cli(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([...args, '--kubeconfig', kubeconfig], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeEach(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  dir = await mkdtemp(join(tmpdir(), 'rg-shutdown-'));
  kubeconfig = await writeKubeconfig(dir, fake.url);
  seed();
});
afterEach(async () => {
  for (const g of guards) await g.close();
  guards = [];
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

async function startGuards(): Promise<void> {
  guards = await startClusterGuards(fake.url, dir, ['guard-a', 'guard-b'], { doctor: { enabled: false } });
}

const workloadWrites = () => fake.requests.filter((r) => /^(PUT|POST|DELETE) /.test(r) && !/\/(configmaps|leases|events)(\/|$)/.test(r));

describe('replica-guard shutdown and restore', () => {
  it('--dry-run prints the plan and changes nothing', async () => {
    const before = state();
    const run = await cli('shutdown', '--agent', 'agents:agent-1', '--dry-run', '-o', 'json');
    expect(run.code, run.err).toBe(0);
    const plan = JSON.parse(run.out) as { kind: string; name: string; action: string; result: string }[];
    expect(plan.map((p) => `${p.kind}/${p.name}: ${p.action}`)).toEqual([
      'HorizontalPodAutoscaler/web-hpa: deleted',
      'CronJob/nightly: suspend false → true',
      'Job/nightly-1: suspend unset → true',
      'Deployment/web: replicas 3 → 0',
      'StatefulSet/db: replicas 2 → 0',
      'DaemonSet/node-agent: nodeSelector + replica-guard.io/shutdown',
      'Pod/loose-1: deleted',
      'Pod/loose-2: deleted',
    ]);
    expect(plan.every((p) => p.result === 'planned')).toBe(true);
    expect(state()).toEqual(before);
    expect(fake.requests.filter((r) => /^(PUT|POST|DELETE) /.test(r))).toEqual([]);
  });

  it('freezes, waits for both replicas, snapshots, brings the family to zero; a second run changes nothing; restore puts every field back', async () => {
    await startGuards();
    const before = state();
    const run = await cli('shutdown', '--agent', 'agents:agent-1');
    expect(run.code, run.err).toBe(0);
    expect(run.out).toContain('freeze.agent.agents.agent-1 acknowledged by 2 guard replica(s): guard-a, guard-b');
    expect(run.out).toMatch(/Deployment\s+agents\s+web\s+replicas 3 → 0\s+changed/);

    const after = state();
    expect(after['horizontalpodautoscalers/web-hpa']).toBe('gone');
    expect(after['pods/loose-1']).toBe('gone');
    expect(after['pods/loose-2']).toBe('gone');
    expect((fake.get('deployments', 'agents', 'web')?.spec as { replicas: number }).replicas).toBe(0);
    expect((fake.get('statefulsets', 'agents', 'db')?.spec as { replicas: number }).replicas).toBe(2 - 2);
    expect((fake.get('cronjobs', 'agents', 'nightly')?.spec as { suspend: boolean }).suspend).toBe(true);
    expect((fake.get('jobs', 'agents', 'nightly-1')?.spec as { suspend: boolean }).suspend).toBe(true);
    expect(fake.get('daemonsets', 'agents', 'node-agent')?.spec).toMatchObject({ template: { spec: { nodeSelector: { disk: 'ssd', 'replica-guard.io/shutdown': 'true' } } } });
    // Someone else's workload and the members' own children are left alone.
    expect(after['deployments/other']).toEqual(before['deployments/other']);
    expect(after['replicasets/web-1']).toEqual(before['replicasets/web-1']);
    // The snapshot is immutable, and the agent may not grow back.
    const snapshot = fake.get('configmaps', 'replica-guard', snapshotName({ namespace: 'agents', name: 'agent-1' }));
    expect(snapshot?.immutable).toBe(true);
    expect(fake.get('configmaps', 'replica-guard', SWITCH_CONFIGMAP)?.data).toHaveProperty(['freeze.agent.agents.agent-1']);
    const res = await (guards[1] as AssembledGuard).app.webhook.inject({ method: 'POST', url: '/validate?timeout=10s', payload: scaleReview('web', 0, 1) });
    expect((res.json() as { response: { allowed: boolean } }).response.allowed).toBe(false);

    const writes = workloadWrites().length;
    const again = await cli('shutdown', '--agent', 'agents:agent-1', '-o', 'json');
    expect(again.code, again.err).toBe(0);
    expect((JSON.parse(again.out.slice(again.out.indexOf('['))) as { result: string }[]).every((r) => r.result === 'unchanged')).toBe(true);
    expect(workloadWrites()).toHaveLength(writes);
    expect(state()).toEqual(after);

    const restored = await cli('restore', '--agent', 'agents:agent-1');
    expect(restored.code, restored.err).toBe(0);
    expect(restored.err).toContain('the agent stays frozen');
    const back = state();
    // Every field as before; the bare pods are not recreated.
    expect({ ...back, 'pods/loose-1': 'x', 'pods/loose-2': 'x' }).toEqual({ ...before, 'pods/loose-1': 'x', 'pods/loose-2': 'x' });
    expect(fake.get('configmaps', 'replica-guard', snapshotName({ namespace: 'agents', name: 'agent-1' }))).toBeUndefined();
    // Restoring twice changes nothing more.
    const twice = await cli('restore', '--agent', 'agents:agent-1', '--unfreeze');
    expect(twice.code).toBe(0);
    expect(state()).toEqual(back);
    expect(fake.get('configmaps', 'replica-guard', SWITCH_CONFIGMAP)?.data ?? {}).not.toHaveProperty(['freeze.agent.agents.agent-1']);
  }, 30_000);

  it('interrupted after two objects, run again, ends as an uninterrupted run, from the same snapshot', async () => {
    const before = state();
    let writes = 0;
    fake.intercept((req) => {
      if (req.method === 'GET' || /\/(configmaps|leases)(\/|$)/.test(req.path)) return undefined;
      writes++;
      return writes > 2 ? { status: 500 } : undefined;
    });
    const broken = await cli('shutdown', '--agent', 'agents:agent-1', '--skip-ack');
    expect(broken.code).toBe(1);
    expect(broken.err).toContain('run the command again to finish from the same snapshot');
    const snapshot = fake.get('configmaps', 'replica-guard', snapshotName({ namespace: 'agents', name: 'agent-1' }));
    fake.intercept(undefined);

    const finished = await cli('shutdown', '--agent', 'agents:agent-1', '--skip-ack');
    expect(finished.code, finished.err).toBe(0);
    expect(finished.out).toContain('(from an earlier run)');
    expect(fake.get('configmaps', 'replica-guard', snapshotName({ namespace: 'agents', name: 'agent-1' }))?.data).toEqual(snapshot?.data);
    const interrupted = state();

    // The same family shut down in one go ends in the same state.
    await cli('restore', '--agent', 'agents:agent-1');
    expect({ ...state(), 'pods/loose-1': 0, 'pods/loose-2': 0 }).toEqual({ ...before, 'pods/loose-1': 0, 'pods/loose-2': 0 });
    fake.put('pods', pod('agents', 'loose-1', undefined));
    fake.put('pods', pod('agents', 'loose-2', undefined));
    expect((await cli('shutdown', '--agent', 'agents:agent-1', '--skip-ack')).code).toBe(0);
    expect(state()).toEqual(interrupted);
  }, 30_000);

  it('changes nothing while a live replica has not acknowledged the freeze, or when no replica acknowledges at all', async () => {
    const before = state();
    const none = await cli('shutdown', '--agent', 'agents:agent-1', '--ack-timeout', '1s');
    expect(none.code).toBe(1);
    expect(none.err).toContain('no guard replica acknowledges the safety switches in replica-guard');
    // A replica that renews its acknowledgement but still applies an older switch map.
    fake.put('leases', {
      metadata: { namespace: 'replica-guard', name: 'replica-guard-ack-stuck', annotations: { 'replica-guard.io/switches-digest': 'older' } },
      spec: { holderIdentity: 'stuck', leaseDurationSeconds: 15, renewTime: new Date().toISOString().replace('Z', '000Z') },
    });
    const stuck = await cli('shutdown', '--agent', 'agents:agent-1', '--ack-timeout', '1s');
    expect(stuck.code).toBe(1);
    expect(stuck.err).toContain('guard replicas stuck did not acknowledge freeze.agent.agents.agent-1');
    expect(state()).toEqual(before);
    expect(fake.get('configmaps', 'replica-guard', snapshotName({ namespace: 'agents', name: 'agent-1' }))).toBeUndefined();
  });

  it('answers --help with 0 and refuses a missing agent with 2', async () => {
    for (const command of ['shutdown', 'restore']) {
      const help = await runCli([command, '--help'], { out: () => undefined, err: () => undefined });
      expect(help).toBe(0);
      expect((await cli(command)).code).toBe(2);
    }
  });
});
