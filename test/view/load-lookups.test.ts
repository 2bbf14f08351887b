import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { SubjectAccessReviews } from '../../src/cluster/access-review.ts';
import type { KubeView } from '../../src/cluster/kube-view.ts';
import type { WorkloadRef } from '../../src/core/types.ts';
import { FakeApiServer, type KubeObject } from '../fake-apiserver/fake-apiserver.ts';
import { eventually, type Owner, ownerOf, sleep, startView } from './view-helpers.ts';

// What the load sources read from the list/watch view, against the fake API server: a
// workload's pods (through its ReplicaSets) with their CPU requests and its selector, the
// HPA targeting it with its desired replicas, and "not known" before the first sync or
// once the view is too stale. And the SubjectAccessReviews the hpa source asks.

let fake: FakeApiServer;
let view: KubeView | undefined;

beforeEach(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
});
afterEach(async () => {
  await view?.stop();
  view = undefined;
  await fake.close();
});

const WEB: WorkloadRef = { group: 'apps', kind: 'Deployment', namespace: 'shop', name: 'web' };
const LABELS = { app: 'web' };
const requesting = (cpu: string | undefined) => ({ name: 'main', image: 'registry.local/web:1', ...(cpu ? { resources: { requests: { cpu } } } : {}) });
const controlledBy = (owner: Owner, name: string) => ({
  ownerReferences: [{ apiVersion: owner.apiVersion, kind: owner.kind, name, uid: owner.uid, controller: true }],
});

function seedWeb(): { web: KubeObject; rs: KubeObject } {
  const template = { metadata: { labels: LABELS }, spec: { containers: [requesting('250m')] } };
  const selector = { matchLabels: LABELS, matchExpressions: [{ key: 'track', operator: 'NotIn', values: ['canary'] }] };
  const web = fake.put('deployments', { metadata: { namespace: 'shop', name: 'web' }, spec: { replicas: 3, selector, template } });
  const rs = fake.put('replicasets', {
    metadata: { namespace: 'shop', name: 'web-1', ...controlledBy(ownerOf(web, 'Deployment'), 'web') },
    spec: { replicas: 3, selector, template },
  });
  return { web, rs };
}

function putPod(name: string, owner: KubeObject, extra: { cpu?: string | undefined; phase?: string; deleting?: boolean } = {}): void {
  fake.put('pods', {
    metadata: {
      namespace: 'shop',
      name,
      labels: LABELS,
      ...controlledBy(ownerOf(owner, 'ReplicaSet'), owner.metadata.name),
      ...(extra.deleting ? { deletionTimestamp: '2026-11-27T12:00:00Z' } : {}),
    },
    spec: { containers: [requesting('cpu' in extra ? extra.cpu : '250m')] },
    status: { phase: extra.phase ?? 'Running' },
  });
}

describe('KubeView: a workload’s pods for the metrics-api source', () => {
  it('finds the running pods through the ReplicaSets, with their CPU requests and the selector', async () => {
    const { rs } = seedWeb();
    putPod('web-1-a', rs);
    putPod('web-1-b', rs, { phase: 'Pending' });
    putPod('web-1-gone', rs, { deleting: true });
    putPod('web-1-done', rs, { phase: 'Failed' });
    // A pod of another workload with the same labels is not the workload's.
    const other = fake.put('replicasets', { metadata: { namespace: 'shop', name: 'stray' }, spec: { replicas: 1, template: { spec: { containers: [requesting('1')] } } } });
    putPod('stray-a', other);
    view = startView(fake.url);
    await view.whenSynced();
    const pods = view.podsOf(WEB);
    expect(pods).toEqual({
      namespace: 'shop',
      labelSelector: 'app=web,track notin (canary)',
      pods: [
        { name: 'web-1-a', cpuRequestCores: 0.25 },
        { name: 'web-1-b', cpuRequestCores: 0.25 },
      ],
    });
  });

  it('follows a new ReplicaSet of a rollout, pods leaving, and a pod without a request', async () => {
    const { web, rs } = seedWeb();
    putPod('web-1-a', rs);
    view = startView(fake.url);
    await view.whenSynced();
    const v = view;
    const rs2 = fake.put('replicasets', {
      metadata: { namespace: 'shop', name: 'web-2', ...controlledBy(ownerOf(web, 'Deployment'), 'web') },
      spec: { replicas: 1, template: { spec: { containers: [requesting('1')] } } },
    });
    putPod('web-2-a', rs2, { cpu: undefined });
    fake.remove('pods', 'shop', 'web-1-a');
    await eventually(() => expect(v.podsOf(WEB)?.pods).toEqual([{ name: 'web-2-a', cpuRequestCores: undefined }]));
  });

  it('answers no pods for a workload it does not have, and nothing before its first sync or when stale', async () => {
    seedWeb();
    let holdPods = true;
    fake.intercept((req) => (holdPods && req.path === '/api/v1/pods' ? { status: 503, reason: 'ServiceUnavailable' } : undefined));
    view = startView(fake.url, { maxStalenessMs: 300 });
    await sleep(100);
    expect(view.podsOf(WEB)).toBeUndefined();
    expect(view.autoscalerOf(WEB)).toBeUndefined();
    holdPods = false;
    await view.whenSynced();
    expect(view.podsOf({ ...WEB, name: 'fresh' })).toEqual({ namespace: 'shop', labelSelector: '', pods: [] });
    // A kind the view does not watch (a scale resource such as a Rollout): its pods are unknown, not none.
    expect(view.podsOf({ group: 'argoproj.io', kind: 'Rollout', namespace: 'shop', name: 'web' })).toBeUndefined();
    // The API goes silent: past maxStaleness the view no longer vouches for its pods.
    fake.stallWatches(true);
    fake.intercept(() => ({ status: 503, reason: 'ServiceUnavailable' }));
    const v = view;
    await eventually(() => expect(v.podsOf(WEB)).toBeUndefined());
    expect(v.autoscalerOf(WEB)).toBeUndefined();
  });
});

describe('KubeView: the HPA of a workload for the hpa source', () => {
  it('finds the HPA targeting the workload and follows its desired replicas', async () => {
    seedWeb();
    const hpa = fake.put('horizontalpodautoscalers', {
      metadata: { namespace: 'shop', name: 'web-hpa' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, maxReplicas: 10 },
    });
    view = startView(fake.url);
    await view.whenSynced();
    // Not reconciled by the HPA controller yet: no desired replicas.
    expect(view.autoscalerOf(WEB)).toEqual({ namespace: 'shop', name: 'web-hpa', uid: hpa.metadata.uid, desiredReplicas: undefined });
    expect(view.autoscalerOf({ ...WEB, name: 'api' })).toBeNull();
    fake.put('horizontalpodautoscalers', { ...hpa, status: { currentReplicas: 3, desiredReplicas: 6 } });
    const v = view;
    await eventually(() => expect(v.autoscalerOf(WEB)?.desiredReplicas).toBe(6));
    fake.remove('horizontalpodautoscalers', 'shop', 'web-hpa');
    await eventually(() => expect(v.autoscalerOf(WEB)).toBeNull());
  });
});

describe('SubjectAccessReviews against the fake API server', () => {
  it("answers from the cluster's rules for the agent's user and groups", async () => {
    fake.setAccessRules([
      { groups: ['system:serviceaccounts:agents'], verbs: ['patch'], apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], namespaces: ['shop'] },
    ]);
    const sar = new SubjectAccessReviews({ connection: { baseUrl: fake.url }, clock: systemClock });
    const agent = { user: 'system:serviceaccount:agents:agent-1', groups: ['system:serviceaccounts', 'system:serviceaccounts:agents'] };
    const hpa = { group: 'autoscaling', resource: 'horizontalpodautoscalers', namespace: 'shop', name: 'web' };
    const signal = new AbortController().signal;
    expect(await sar.allowed(agent, { ...hpa, verb: 'patch' }, signal)).toBe(true);
    expect(await sar.allowed(agent, { ...hpa, verb: 'update' }, signal)).toBe(false);
    expect(await sar.allowed(agent, { ...hpa, verb: 'patch', namespace: 'prod' }, signal)).toBe(false);
    expect(await sar.allowed({ ...agent, groups: [] }, { ...hpa, verb: 'patch' }, signal)).toBe(false);
    expect(fake.accessReviews).toHaveLength(4);
  });
});
