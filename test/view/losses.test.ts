import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KubeView } from '../../src/cluster/kube-view.ts';
import type { CountLoweredEvent, LossEvent } from '../../src/cluster/loss-detector.ts';
import { FakeApiServer, type KubeObject } from '../fake-apiserver/fake-apiserver.ts';
import { deployment, eventually, ownerOf, pod, podTemplate, replicaSet, sleep, startView } from './view-helpers.ts';

// Losses read from the view (DESIGN.md "loss"): pods that go while their owner's count
// stays; HPA scale-downs, rollouts and Job completion are not losses.

let fake: FakeApiServer;
let view: KubeView;
let losses: LossEvent[];
let lowered: CountLoweredEvent[];

beforeEach(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
});
afterEach(async () => {
  await view.stop();
  await fake.close();
});

async function start(): Promise<void> {
  view = startView(fake.url);
  losses = [];
  lowered = [];
  view.losses.onLoss((e) => losses.push(e));
  view.losses.onCountLowered((e) => lowered.push(e));
  await view.whenSynced();
  // Every watch open: what happens next arrives as events.
  await eventually(() => expect(fake.openWatches).toBe(10));
}

/** Longer than the settle time (300 ms) and a watch round trip: any loss would be reported by then. */
const settled = () => sleep(800);

/** A Deployment with one ReplicaSet and `n` running pods. */
function web(n: number) {
  const d = fake.put('deployments', deployment('agents', 'web', n));
  const rs = fake.put('replicasets', replicaSet('agents', 'web-1', n, ownerOf(d, 'Deployment')));
  const pods = Array.from({ length: n }, (_, i) => fake.put('pods', pod('agents', `web-1-${i}`, ownerOf(rs, 'ReplicaSet'))));
  return { d, rs, pods };
}

const deleting = (o: KubeObject): KubeObject => ({
  ...o,
  metadata: { ...o.metadata, resourceVersion: undefined, deletionTimestamp: '2025-01-01T00:00:30Z', deletionGracePeriodSeconds: 30 },
});
const withPhase = (o: KubeObject, phase: string): KubeObject => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined }, status: { phase } });

describe('losses', () => {
  it('counts a pod deleted by another user while its ReplicaSet keeps its replicas, once', async () => {
    const { d, pods } = web(3);
    await start();
    const victim = pods[1];
    if (!victim) throw new Error('no pod');
    // Graceful deletion: the deletionTimestamp first, the object gone a grace period later.
    fake.put('pods', deleting(victim));
    await sleep(50);
    fake.remove('pods', 'agents', victim.metadata.name);
    await eventually(() => expect(losses).toHaveLength(1));
    await settled();
    expect(losses).toHaveLength(1);
    expect(losses[0]).toMatchObject({
      podUid: victim.metadata.uid,
      namespace: 'agents',
      name: 'web-1-1',
      reason: 'deleted',
      serviceAccount: 'agent-1',
      topOwner: { ref: { kind: 'Deployment', name: 'web', uid: d.metadata.uid } },
    });
    expect(view.losses.recentLosses()).toHaveLength(1);
  });

  it('counts a pod that fails and is then deleted once', async () => {
    const { pods } = web(2);
    await start();
    const victim = pods[0];
    if (!victim) throw new Error('no pod');
    fake.put('pods', withPhase(victim, 'Failed'));
    await sleep(50);
    fake.put('pods', deleting(withPhase(victim, 'Failed')));
    fake.remove('pods', 'agents', victim.metadata.name);
    await eventually(() => expect(losses).toHaveLength(1));
    await settled();
    expect(losses.map((l) => l.reason)).toEqual(['failed']);
  });

  it('does not count an HPA scale-down: the ReplicaSet is lowered, then its pod deleted', async () => {
    const { d, rs, pods } = web(3);
    await start();
    const hpaScale = [
      { manager: 'kubectl-client-side-apply', operation: 'Update', time: '2025-01-01T10:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:replicas': {}, 'f:template': {} } } },
      { manager: 'kube-controller-manager', operation: 'Update', subresource: 'scale', time: '2025-01-01T10:05:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:replicas': {} } } },
    ];
    fake.put('deployments', { ...deployment('agents', 'web', 2), metadata: { namespace: 'agents', name: 'web', managedFields: hpaScale } });
    fake.put('replicasets', replicaSet('agents', 'web-1', 2, ownerOf(d, 'Deployment')));
    const victim = pods[2];
    if (!victim) throw new Error('no pod');
    fake.put('pods', deleting(victim));
    fake.remove('pods', 'agents', victim.metadata.name);
    await settled();
    expect(losses).toEqual([]);
    expect(lowered.find((e) => e.ref.kind === 'Deployment')).toMatchObject({
      uid: d.metadata.uid,
      from: 3,
      to: 2,
      manager: 'kube-controller-manager',
      subresource: 'scale',
    });
    expect(lowered.find((e) => e.ref.kind === 'ReplicaSet')).toMatchObject({ uid: rs.metadata.uid, from: 3, to: 2, controllerUid: d.metadata.uid });
    expect(lowered.find((e) => e.ref.kind === 'Deployment')?.controllerUid).toBeUndefined();
    // The drop of one excused one pod: a second delete is a loss.
    const next = pods[1];
    if (!next) throw new Error('no pod');
    fake.remove('pods', 'agents', next.metadata.name);
    await eventually(() => expect(losses.map((l) => l.name)).toEqual(['web-1-1']));
  });

  it('reports who lowered a count when it was someone else', async () => {
    web(3);
    await start();
    fake.put('deployments', {
      ...deployment('agents', 'web', 1),
      metadata: {
        namespace: 'agents',
        name: 'web',
        managedFields: [{ manager: 'kubectl', operation: 'Update', subresource: 'scale', time: '2025-01-01T11:00:00Z', fieldsV1: { 'f:spec': { 'f:replicas': {} } } }],
      },
    });
    await eventually(() => expect(lowered).toHaveLength(1));
    expect(lowered[0]).toMatchObject({ from: 3, to: 1, manager: 'kubectl', subresource: 'scale', operation: 'Update', ref: { name: 'web' } });
  });

  it('does not count a rollout retiring its old ReplicaSet', async () => {
    const { d, pods } = web(2);
    await start();
    const fresh = fake.put('replicasets', replicaSet('agents', 'web-2', 1, ownerOf(d, 'Deployment')));
    fake.put('pods', pod('agents', 'web-2-0', ownerOf(fresh, 'ReplicaSet')));
    fake.put('replicasets', replicaSet('agents', 'web-1', 1, ownerOf(d, 'Deployment')));
    fake.remove('pods', 'agents', pods[0]?.metadata.name ?? '');
    fake.put('replicasets', replicaSet('agents', 'web-2', 2, ownerOf(d, 'Deployment')));
    fake.put('pods', pod('agents', 'web-2-1', ownerOf(fresh, 'ReplicaSet')));
    fake.put('replicasets', replicaSet('agents', 'web-1', 0, ownerOf(d, 'Deployment')));
    fake.remove('pods', 'agents', pods[1]?.metadata.name ?? '');
    // The old ReplicaSet goes too (revisionHistoryLimit), with nothing left in it.
    fake.remove('replicasets', 'agents', 'web-1');
    await settled();
    expect(losses).toEqual([]);
    // Still watching: a delete of a new pod is a loss.
    fake.remove('pods', 'agents', 'web-2-0');
    await eventually(() => expect(losses.map((l) => l.name)).toEqual(['web-2-0']));
  });

  it('does not count the pods of a deleted Deployment as they are collected', async () => {
    const { pods } = web(3);
    await start();
    fake.remove('deployments', 'agents', 'web');
    fake.remove('replicasets', 'agents', 'web-1');
    for (const p of pods) fake.remove('pods', 'agents', p.metadata.name);
    await settled();
    expect(losses).toEqual([]);
  });

  it('does not count Job pods that succeed and are deleted, nor those stopped when the Job completes', async () => {
    const job = fake.put('jobs', { metadata: { namespace: 'agents', name: 'batch' }, spec: { parallelism: 2, completions: 3, template: podTemplate('agent-1') } });
    const owner = ownerOf(job, 'Job', 'batch/v1');
    const a = fake.put('pods', pod('agents', 'batch-a', owner));
    const b = fake.put('pods', pod('agents', 'batch-b', owner));
    await start();
    fake.put('pods', withPhase(a, 'Succeeded'));
    await sleep(50);
    fake.remove('pods', 'agents', 'batch-a');
    fake.put('jobs', { ...job, metadata: { ...job.metadata, resourceVersion: undefined }, status: { conditions: [{ type: 'Complete', status: 'True' }] } });
    fake.put('pods', deleting(b));
    fake.remove('pods', 'agents', 'batch-b');
    await settled();
    expect(losses).toEqual([]);
  });

  it('does not count a StatefulSet replacing pods of its old revision, but counts one of the new revision', async () => {
    const sts = fake.put('statefulsets', { metadata: { namespace: 'agents', name: 'db' }, spec: { replicas: 2, template: podTemplate('agent-1') }, status: { updateRevision: 'db-1' } });
    const owner = ownerOf(sts, 'StatefulSet');
    const revised = (name: string, revision: string): KubeObject => {
      const p = pod('agents', name, owner);
      return { ...p, metadata: { ...p.metadata, labels: { 'controller-revision-hash': revision } } };
    };
    fake.put('pods', revised('db-0', 'db-1'));
    fake.put('pods', revised('db-1', 'db-1'));
    await start();
    fake.put('statefulsets', { ...sts, metadata: { ...sts.metadata, resourceVersion: undefined }, status: { updateRevision: 'db-2', currentRevision: 'db-1' } });
    fake.remove('pods', 'agents', 'db-1');
    fake.put('pods', revised('db-1', 'db-2'));
    await settled();
    expect(losses).toEqual([]);
    fake.remove('pods', 'agents', 'db-1');
    await eventually(() => expect(losses.map((l) => l.name)).toEqual(['db-1']));
  });

  it('counts a bare pod deleted by someone else, with the pod itself as the workload lost', async () => {
    fake.put('pods', pod('agents', 'solo', undefined));
    await start();
    fake.remove('pods', 'agents', 'solo');
    await eventually(() => expect(losses).toHaveLength(1));
    expect(losses[0]).toMatchObject({ ownerUid: undefined, topOwner: { ref: { kind: 'Pod', name: 'solo' } } });
  });
});
