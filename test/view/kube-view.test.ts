import { Counter, Gauge, Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import type { KubeView } from '../../src/cluster/kube-view.ts';
import { familyOf } from '../../src/core/family.ts';
import type { AgentIdentity, WorkloadRef } from '../../src/core/types.ts';
import { FakeApiServer, type KubeObject } from '../fake-apiserver/fake-apiserver.ts';
import { deployment, eventually, node, ownerOf, pod, podTemplate, replicaSet, sleep, startView } from './view-helpers.ts';

// The list/watch-backed ClusterView against the fake API server: sync and readiness,
// staleness while the API is down, DaemonSets that follow the nodes, and families
// computed over it by the core's own familyOf.

let fake: FakeApiServer;
let view: KubeView | undefined;

beforeEach(async () => {
  fake = await FakeApiServer.start({
    bookmarkIntervalMs: 50,
    extraResources: [{ group: 'ray.io', version: 'v1', resource: 'rayclusters', kind: 'RayCluster', namespaced: true }],
  });
});
afterEach(async () => {
  await view?.stop();
  view = undefined;
  await fake.close();
});

const AGENT: AgentIdentity = {
  username: 'system:serviceaccount:agents:agent-1',
  serviceAccount: { namespace: 'agents', name: 'agent-1' },
};
const NOTHING: WorkloadRef = { group: '', kind: 'None', namespace: '', name: '' };

describe('KubeView: sync and readiness', () => {
  it('is not synced and has no staleness until every resource is listed, then stays synced', async () => {
    for (let i = 0; i < 7; i++) fake.put('deployments', deployment('agents', `d${i}`, 1));
    for (let i = 0; i < 5; i++) fake.put('nodes', node(`n${i}`));
    let holdPods = true;
    fake.intercept((req) =>
      // Hold the pods' list back: the view must not call itself synced without it.
      holdPods && req.path === '/api/v1/pods' ? { status: 503, reason: 'ServiceUnavailable' } : undefined,
    );
    view = startView(fake.url);
    const v = view;
    await eventually(() => expect(v.caches(0).filter((c) => c.synced)).toHaveLength(9));
    await sleep(100);
    expect(v.synced()).toBe(false);
    expect(v.staleness(systemClock.monotonicMs())).toBeUndefined();
    holdPods = false;
    await view.whenSynced();
    expect(view.synced()).toBe(true);
    expect(view.staleness(systemClock.monotonicMs())).toBeLessThan(1_000);
    expect(view.workload('apps', 'Deployment', 'agents', 'd6')?.count.steady).toBe(1);
    expect(view.nodes()).toHaveLength(5);
    expect(fake.requests.filter((r) => r === 'GET /apis/apps/v1/deployments').length).toBe(3);
  });

  it('sees a change through the watch', async () => {
    fake.put('deployments', deployment('agents', 'web', 1));
    view = startView(fake.url);
    await view.whenSynced();
    fake.put('deployments', deployment('agents', 'web', 4));
    await eventually(() => expect(view?.workload('apps', 'Deployment', 'agents', 'web')?.count.steady).toBe(4));
    fake.remove('deployments', 'agents', 'web');
    await eventually(() => expect(view?.workload('apps', 'Deployment', 'agents', 'web')).toBeUndefined());
  });

  it('stays synced while the API is down, with a staleness that grows, and recovers', async () => {
    fake.put('deployments', deployment('agents', 'web', 1));
    view = startView(fake.url);
    await view.whenSynced();
    const v = view;
    fake.stallWatches(true);
    fake.intercept(() => ({ status: 503, reason: 'ServiceUnavailable' }));
    fake.dropWatches();
    await sleep(600);
    const stale = v.staleness(systemClock.monotonicMs()) ?? 0;
    expect(v.synced()).toBe(true);
    expect(stale).toBeGreaterThan(500);
    // Lookups still answer from the cache.
    expect(v.workload('apps', 'Deployment', 'agents', 'web')?.count.steady).toBe(1);
    expect(v.caches(systemClock.monotonicMs()).every((c) => (c.ageMs ?? 0) > 500)).toBe(true);
    fake.intercept(undefined);
    fake.stallWatches(false);
    fake.put('deployments', deployment('agents', 'web', 2));
    await eventually(() => expect(v.workload('apps', 'Deployment', 'agents', 'web')?.count.steady).toBe(2));
    await eventually(() => expect(v.staleness(systemClock.monotonicMs()) ?? Infinity).toBeLessThan(1_000));
  });

  it('exports cache age, object counts and watch restarts through the gauges it is given', async () => {
    const registry = new Registry();
    const cacheAge = new Gauge({ name: 'replica_guard_view_cache_age_seconds', help: 'h', labelNames: ['resource'], registers: [registry] });
    const objects = new Gauge({ name: 'replica_guard_view_objects', help: 'h', labelNames: ['resource'], registers: [registry] });
    const restarts = new Counter({ name: 'replica_guard_view_watch_restarts_total', help: 'h', labelNames: ['resource', 'reason'], registers: [registry] });
    fake.put('deployments', deployment('agents', 'a', 1));
    fake.put('pods', pod('agents', 'p', undefined));
    view = startView(fake.url, { metrics: { cacheAge, objects, restarts } });
    await view.whenSynced();
    await eventually(() => expect(fake.openWatches).toBe(10));
    fake.dropWatches();
    await sleep(100);
    view.collect();
    const text = await registry.metrics();
    expect(text).toMatch(/replica_guard_view_objects\{resource="deployments.apps"\} 1/);
    expect(text).toMatch(/replica_guard_view_objects\{resource="pods"\} 1/);
    expect(text).toMatch(/replica_guard_view_cache_age_seconds\{resource="nodes"\} 0\.\d+/);
    expect(text).toMatch(/replica_guard_view_watch_restarts_total\{resource="pods",reason="closed"\} 1/);
  });
});

describe('KubeView: DaemonSets follow the nodes', () => {
  const daemonSet = (nodeSelector?: Record<string, string>): KubeObject => ({
    metadata: { namespace: 'agents', name: 'ds' },
    spec: { template: { spec: { ...podTemplate('agent-1').spec, ...(nodeSelector ? { nodeSelector } : {}) } } },
  });

  it('counts eligible nodes, follows node changes and a widened nodeSelector', async () => {
    fake.put('nodes', node('n1', { pool: 'gpu' }));
    fake.put('nodes', node('n2'));
    fake.put('nodes', node('n3'));
    fake.put('daemonsets', daemonSet({ pool: 'gpu' }));
    view = startView(fake.url);
    await view.whenSynced();
    const v = view;
    const steady = () => v.workload('apps', 'DaemonSet', 'agents', 'ds')?.count.steady;
    expect(steady()).toBe(1);
    fake.put('nodes', node('n2', { pool: 'gpu' }));
    await eventually(() => expect(steady()).toBe(2));
    fake.put('nodes', node('n4', { pool: 'gpu' }));
    await eventually(() => expect(steady()).toBe(3));
    fake.remove('nodes', undefined, 'n1');
    await eventually(() => expect(steady()).toBe(2));
    // Widened to every node.
    fake.put('daemonsets', daemonSet());
    await eventually(() => expect(steady()).toBe(3));
    expect(v.nodes()?.map((n) => n.name).sort()).toEqual(['n2', 'n3', 'n4']);
  });

  it('ignores node status updates that change no label', async () => {
    fake.put('nodes', node('n1'));
    fake.put('daemonsets', daemonSet());
    view = startView(fake.url);
    await view.whenSynced();
    const before = view.nodes();
    fake.put('nodes', { ...node('n1'), status: { conditions: [{ type: 'Ready', status: 'False' }] } });
    await sleep(150);
    expect(view.nodes()).toBe(before);
  });
});

describe('KubeView: families over the view', () => {
  it('counts a Deployment once, not its ReplicaSet and Pods on top of it', async () => {
    const d = fake.put('deployments', deployment('agents', 'web', 3));
    const rs = fake.put('replicasets', replicaSet('agents', 'web-1', 3, ownerOf(d, 'Deployment')));
    for (let i = 0; i < 3; i++) fake.put('pods', pod('agents', `web-1-${i}`, ownerOf(rs, 'ReplicaSet')));
    view = startView(fake.url);
    await view.whenSynced();
    const family = familyOf(AGENT, view, [], [], NOTHING);
    expect(family.members.map((m) => `${m.ref.kind}/${m.ref.name}`)).toEqual(['Deployment/web']);
    // 3 replicas plus the default 25% surge, rounded up.
    expect(family.potential).toBe(4);
    expect(view.podCount).toBe(3);
  });

  it('counts clones in another namespace and as another kind, and an HPA raises its target', async () => {
    fake.put('deployments', deployment('agents', 'web', 2));
    // Same image repository (another tag), same args, same service account name: clones.
    fake.put('deployments', deployment('elsewhere', 'copy', 3, 'agent-1', 'registry.local/agent:2.0'));
    fake.put('statefulsets', { metadata: { namespace: 'other', name: 'sts' }, spec: { replicas: 2, template: podTemplate('agent-1', 'registry.local/agent@sha256:abc') } });
    // Same image, another service account: not a clone, not the agent's.
    fake.put('deployments', deployment('other', 'unrelated', 5, 'someone-else'));
    fake.put('horizontalpodautoscalers', {
      metadata: { namespace: 'agents', name: 'web' },
      spec: { minReplicas: 1, maxReplicas: 6, scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' } },
    });
    view = startView(fake.url);
    await view.whenSynced();
    const family = familyOf(AGENT, view, [], [], NOTHING);
    expect(family.members.map((m) => `${m.ref.namespace}/${m.ref.kind}/${m.ref.name}`).sort()).toEqual([
      'agents/Deployment/web',
      'elsewhere/Deployment/copy',
      'other/StatefulSet/sts',
    ]);
    // web: 6 (HPA ceiling) + 2 surge; copy: 3 + 1; sts: 2.
    expect(family.potential).toBe(8 + 4 + 2);
    // The family the decisions read, kept beside the view, says the same.
    expect(view.family({ agent: AGENT, provenance: [], ignoreImages: [], excluding: NOTHING })).toMatchObject({ workloads: 3, potential: 14 });
    expect(view.scalerOf({ group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'web' })?.count.steady).toBe(6);
  });

  it('finds members by provenance UID, and a bare pod is a workload of its own until it finishes', async () => {
    const mine = fake.put('deployments', deployment('x', 'made-by-agent', 2, 'worker', 'other/image:1'));
    fake.put('pods', pod('agents', 'bare', undefined));
    view = startView(fake.url);
    await view.whenSynced();
    const v = view;
    const family = familyOf(AGENT, v, [mine.metadata.uid ?? ''], [], NOTHING);
    expect(family.members.map((m) => m.ref.name).sort()).toEqual(['bare', 'made-by-agent']);
    const provenance = [{ uid: mine.metadata.uid ?? '' }];
    expect([...v.family({ agent: AGENT, provenance: provenance, ignoreImages: [], excluding: NOTHING }).members()].map((m) => m.ref.name).sort()).toEqual(['bare', 'made-by-agent']);
    fake.put('pods', pod('agents', 'bare', undefined, 'Succeeded'));
    await eventually(() => expect(familyOf(AGENT, v, [], [], NOTHING).members).toEqual([]));
    // The kept family followed the watch event.
    expect([...v.family({ agent: AGENT, provenance: provenance, ignoreImages: [], excluding: NOTHING }).members()].map((m) => m.ref.name)).toEqual(['made-by-agent']);
  });

  it('remembers the UIDs of workloads it saw deleted or replaced under the same name, and no others', async () => {
    const gone = fake.put('deployments', deployment('x', 'gone', 2));
    const replaced = fake.put('deployments', deployment('x', 'replaced', 2));
    const kept = fake.put('deployments', deployment('x', 'kept', 2));
    view = startView(fake.url);
    await view.whenSynced();
    const v = view;
    const uid = (o: { metadata: { uid?: string } }) => o.metadata.uid ?? '';
    fake.remove('deployments', 'x', 'gone');
    fake.remove('deployments', 'x', 'replaced');
    const again = fake.put('deployments', deployment('x', 'replaced', 3));
    await eventually(() => expect(v.workload('apps', 'Deployment', 'x', 'replaced')?.ref.uid).toBe(uid(again)));
    await eventually(() => expect(v.isGone(uid(gone))).toBe(true));
    expect(v.isGone(uid(replaced))).toBe(true);
    expect(v.isGone(uid(again))).toBe(false);
    expect(v.isGone(uid(kept))).toBe(false);
    // A scale of a live workload is no deletion.
    fake.put('deployments', { ...kept, spec: { ...(kept.spec as object), replicas: 4 } });
    await eventually(() => expect(v.workload('apps', 'Deployment', 'x', 'kept')?.count.steady).toBe(4));
    expect(v.isGone(uid(kept))).toBe(false);
  });

  it('treats objects controlled by kinds it does not watch as top owners', async () => {
    const knativeOwner = { apiVersion: 'serving.knative.dev/v1', kind: 'Revision', uid: 'rev-1' };
    fake.put('deployments', { ...deployment('agents', 'kn', 2), metadata: { namespace: 'agents', name: 'kn', ownerReferences: [{ ...knativeOwner, name: 'r', controller: true }] } });
    view = startView(fake.url);
    await view.whenSynced();
    expect(familyOf(AGENT, view, [], [], NOTHING).members.map((m) => m.ref.name)).toEqual(['kn']);
  });

  it('counts a mapped custom resource by its paths', async () => {
    fake.put('rayclusters', {
      metadata: { namespace: 'agents', name: 'ray' },
      spec: {
        headGroupSpec: { template: podTemplate('agent-1') },
        workerGroupSpecs: [
          { replicas: 3, template: podTemplate('agent-1') },
          { replicas: 2, template: podTemplate('agent-1', 'registry.local/gpu-worker:1') },
        ],
      },
    });
    view = startView(fake.url, {
      customResources: [
        {
          group: 'ray.io',
          version: 'v1',
          resource: 'rayclusters',
          kind: 'RayCluster',
          countPaths: ['spec.workerGroupSpecs[].replicas'],
          fixedCount: 1,
          podTemplatePaths: ['spec.headGroupSpec.template', 'spec.workerGroupSpecs[].template'],
        },
      ],
    });
    await view.whenSynced();
    const ray = view.workload('ray.io', 'RayCluster', 'agents', 'ray');
    expect(ray?.count.steady).toBe(6);
    expect(ray?.fingerprints.map((f) => f.image).sort()).toEqual(['registry.local/agent', 'registry.local/agent', 'registry.local/gpu-worker']);
    expect(familyOf(AGENT, view, [], [], NOTHING).potential).toBe(6);
  });
});
