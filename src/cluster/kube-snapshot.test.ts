import { describe, expect, it } from 'vitest';
import { placeholderNodes } from '../admission/node-eligibility.ts';
import { builtInKind, type WorkloadKind } from '../admission/workload-kinds.ts';
import {
  daemonSetCountInput,
  Interner,
  podCpuRequestMillis,
  podSelectorOf,
  sameNode,
  stripNode,
  stripPod,
  stripWorkload,
} from './kube-snapshot.ts';

const TRACKED = new Set(['apps/Deployment', 'apps/ReplicaSet', 'batch/Job', 'batch/CronJob', '/Node']);
const kind = (group: string, resource: string): WorkloadKind => {
  const k = builtInKind(group, resource);
  if (!k) throw new Error(resource);
  return k;
};
const template = (sa: string, image: string) => ({ spec: { serviceAccountName: sa, containers: [{ name: 'c', image, args: ['--serve'] }] } });

describe('stripWorkload', () => {
  it('keeps the count, service accounts and fingerprints, and nothing else', () => {
    const raw = {
      metadata: { name: 'web', namespace: 'agents', uid: 'u1', annotations: { big: 'x'.repeat(1000) }, managedFields: [{}] },
      spec: { replicas: 3, strategy: { rollingUpdate: { maxSurge: 2 } }, template: template('agent-1', 'reg/agent:1.2') },
      status: { replicas: 3 },
    };
    const { snapshot, owner } = stripWorkload(kind('apps', 'deployments'), raw, undefined, TRACKED, new Interner());
    expect(snapshot).toEqual({
      ref: { group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'web', uid: 'u1' },
      count: { steady: 3, extra: { type: 'surge-fixed', instances: 2 } },
      serviceAccounts: ['agent-1'],
      fingerprints: [{ key: JSON.stringify(['agent-1', 'reg/agent', [], ['--serve']]), image: 'reg/agent' }],
    });
    expect(owner).toEqual({ steady: 3, terminal: false, deleting: false });
  });

  it("keeps a workload's justification (capped), what a Scale of it is judged by", () => {
    const raw = (text: string) => ({
      metadata: { name: 'web', namespace: 'agents', annotations: { 'replica-guard.io/justification': text } },
      spec: { replicas: 1, template: template('agent-1', 'reg/agent:1.2') },
    });
    const strip = (text: string) => stripWorkload(kind('apps', 'deployments'), raw(text), undefined, TRACKED, new Interner()).snapshot;
    expect(strip('backlog doubled').justification).toBe('backlog doubled');
    expect(strip('y'.repeat(5000)).justification).toHaveLength(1024);
    expect(strip('  ')).not.toHaveProperty('justification');
  });

  it('marks a controlled object with its controller only when the view knows that kind', () => {
    const rs = (ownerKind: string, apiVersion: string) => ({
      metadata: { name: 'web-1', namespace: 'a', uid: 'rs', ownerReferences: [{ apiVersion, kind: ownerKind, uid: 'owner', controller: true }] },
      spec: { replicas: 1, template: template('default', 'nginx') },
    });
    const i = new Interner();
    expect(stripWorkload(kind('apps', 'replicasets'), rs('Deployment', 'apps/v1'), undefined, TRACKED, i).snapshot.controllerUid).toBe('owner');
    expect(
      stripWorkload(kind('apps', 'replicasets'), rs('Revision', 'serving.knative.dev/v1'), undefined, TRACKED, i).snapshot.controllerUid,
    ).toBeUndefined();
  });

  it('reads an HPA target, a finished Job, a StatefulSet revision and a DaemonSet rollout', () => {
    const i = new Interner();
    const hpa = stripWorkload(
      kind('autoscaling', 'horizontalpodautoscalers'),
      { metadata: { name: 'h', namespace: 'a', uid: 'h' }, spec: { maxReplicas: 7, scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' } } },
      undefined,
      TRACKED,
      i,
    );
    expect(hpa.snapshot.scaleTarget).toEqual({ group: 'apps', kind: 'Deployment', name: 'web' });
    expect(hpa.snapshot.count.steady).toBe(7);
    const job = stripWorkload(
      kind('batch', 'jobs'),
      { metadata: { name: 'j', namespace: 'a', uid: 'j' }, spec: { parallelism: 2, template: template('a', 'x') }, status: { conditions: [{ type: 'Complete', status: 'True' }] } },
      undefined,
      TRACKED,
      i,
    );
    expect(job.owner).toMatchObject({ steady: 2, terminal: true });
    const sts = stripWorkload(
      kind('apps', 'statefulsets'),
      { metadata: { name: 's', namespace: 'a', uid: 's', deletionTimestamp: '2025-01-01T00:00:00Z' }, spec: { replicas: 2, template: template('a', 'x') }, status: { updateRevision: 's-2' } },
      undefined,
      TRACKED,
      i,
    );
    expect(sts.owner).toEqual({ steady: 2, terminal: false, deleting: true, revision: 's-2' });
    const ds = stripWorkload(
      kind('apps', 'daemonsets'),
      { metadata: { name: 'd', namespace: 'a', uid: 'd', generation: 2 }, spec: { template: template('a', 'x') }, status: { observedGeneration: 1 } },
      placeholderNodes(3),
      TRACKED,
      i,
    );
    expect(ds.owner).toMatchObject({ steady: 3, rollingOut: true });
  });

  it('leaves a DaemonSet uncounted without nodes, and counts its kept input like the object', () => {
    const raw = {
      metadata: { name: 'd', namespace: 'a', uid: 'd' },
      spec: {
        template: { spec: { nodeSelector: { pool: 'gpu' }, containers: [{ image: 'x', env: [{ name: 'SECRET', value: 's' }] }] } },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1 } },
      },
    };
    const ds = kind('apps', 'daemonsets');
    expect(stripWorkload(ds, raw, undefined, TRACKED, new Interner()).uncounted).toBeDefined();
    const nodes = [...placeholderNodes(2), { name: 'g', labels: { pool: 'gpu' } }];
    const input = daemonSetCountInput(raw);
    expect(JSON.stringify(input)).not.toContain('SECRET');
    expect(ds.count(input as never, { nodes })).toEqual(ds.count(raw as never, { nodes }));
    expect(ds.count(input as never, { nodes })).toEqual({ count: { steady: 1, extra: { type: 'surge-fixed', instances: 1 } } });
  });

  it('throws when a counted field has a shape counting does not accept', () => {
    expect(() =>
      stripWorkload(kind('apps', 'deployments'), { metadata: { name: 'x' }, spec: { replicas: 'three', template: template('a', 'b') } }, undefined, TRACKED, new Interner()),
    ).toThrow(/replicas/);
  });
});

describe('stripPod', () => {
  const podKind = kind('', 'pods');
  it('keeps only loss facts for an owned pod, and a workload snapshot for a bare one', () => {
    const owned = stripPod(
      podKind,
      {
        metadata: { name: 'p', namespace: 'a', uid: 'p1', labels: { 'controller-revision-hash': 'r1' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', uid: 'rs', controller: true }] },
        spec: { serviceAccountName: 'agent-1', containers: [{ image: 'x' }] },
        status: { phase: 'Running' },
      },
      TRACKED,
      new Interner(),
    );
    expect(owned).toEqual({
      facts: { uid: 'p1', ownerUid: 'rs', phase: 'Running', deleting: false, serviceAccount: 'agent-1', revision: 'r1' },
      bare: undefined,
    });
    const bare = stripPod(podKind, { metadata: { name: 'b', namespace: 'a', uid: 'b1' }, spec: { containers: [{ image: 'x' }] } }, TRACKED, new Interner());
    expect(bare.facts).toMatchObject({ ownerUid: undefined, serviceAccount: 'default', phase: '' });
    expect(bare.bare).toMatchObject({ ref: { kind: 'Pod', name: 'b', uid: 'b1' }, count: { steady: 1 } });
  });
});

describe('what the metrics-api source needs', () => {
  const requesting = (cpu: unknown) => ({ name: 'c', image: 'x', resources: { requests: cpu === undefined ? {} : { cpu, memory: '1Gi' } } });

  it("sums a pod's CPU requests over its containers and sidecars, in millicores", () => {
    expect(podCpuRequestMillis({ containers: [requesting('250m'), requesting('0.5')] })).toBe(750);
    // A sidecar (restartable init container) runs and is measured; a plain init container has ended.
    expect(
      podCpuRequestMillis({
        initContainers: [{ ...requesting('100m'), restartPolicy: 'Always' }, requesting('4')],
        containers: [requesting('1')],
      }),
    ).toBe(1100);
    // A pod-level request replaces the sum.
    expect(podCpuRequestMillis({ resources: { requests: { cpu: '2' } }, containers: [requesting(undefined)] })).toBe(2000);
    expect(podCpuRequestMillis({ containers: [requesting('1500000n')] })).toBe(2);
  });

  it('has no CPU request when a running container requests none or the value is not a quantity', () => {
    expect(podCpuRequestMillis({ containers: [requesting('1'), requesting(undefined)] })).toBeUndefined();
    expect(podCpuRequestMillis({ containers: [{ name: 'c', image: 'x' }] })).toBeUndefined();
    expect(podCpuRequestMillis({ containers: [requesting('lots')] })).toBeUndefined();
    expect(podCpuRequestMillis({ containers: [] })).toBeUndefined();
    expect(podCpuRequestMillis(undefined)).toBeUndefined();
  });

  it("keeps a pod's CPU request in its facts", () => {
    const { facts } = stripPod(
      kind('', 'pods'),
      {
        metadata: { name: 'p', namespace: 'a', uid: 'p1', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', uid: 'rs', controller: true }] },
        spec: { containers: [requesting('300m')] },
      },
      TRACKED,
      new Interner(),
    );
    expect(facts.cpuRequestMillis).toBe(300);
  });

  it("writes a workload's selector in the API's labelSelector form", () => {
    const deployment = { group: 'apps', kind: 'Deployment' };
    expect(
      podSelectorOf(deployment, {
        spec: {
          selector: {
            matchLabels: { app: 'web' },
            matchExpressions: [
              { key: 'tier', operator: 'In', values: ['a', 'b'] },
              { key: 'env', operator: 'NotIn', values: ['dev'] },
              { key: 'team', operator: 'Exists' },
              { key: 'canary', operator: 'DoesNotExist' },
            ],
          },
        },
      }),
    ).toBe('app=web,tier in (a,b),env notin (dev),team,!canary');
    expect(podSelectorOf({ group: '', kind: 'ReplicationController' }, { spec: { selector: { app: 'old' } } })).toBe('app=old');
    expect(podSelectorOf({ group: 'apps', kind: 'StatefulSet' }, { spec: { selector: {} } })).toBe('');
    // Kinds without a pod selector, and operators this code does not know: no selector.
    expect(podSelectorOf({ group: 'batch', kind: 'Job' }, { spec: { selector: { matchLabels: { a: 'b' } } } })).toBeUndefined();
    expect(podSelectorOf(deployment, { spec: { selector: { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] } } })).toBeUndefined();
  });
});

describe('nodes and interning', () => {
  it('keeps a node name and labels, and compares them', () => {
    const i = new Interner();
    const a = stripNode({ metadata: { name: 'n', labels: { zone: 'a' } }, status: { conditions: [] } }, i);
    expect(a).toEqual({ name: 'n', labels: { zone: 'a' } });
    expect(sameNode(a, { name: 'n', labels: { zone: 'a' } })).toBe(true);
    expect(sameNode(a, { name: 'n', labels: { zone: 'b' } })).toBe(false);
    expect(sameNode(a, { name: 'n', labels: {} })).toBe(false);
  });

  it('shares equal strings and starts afresh past its limit', () => {
    const i = new Interner(2);
    const s1 = i.string(['a', 'b'].join(''));
    expect(i.string('ab')).toBe(s1);
    i.string('c');
    i.string('d');
    expect(i.string('ab')).toBe('ab');
    expect(i.list(['x', 'y'])).toBe(i.list(['x', 'y']));
  });
});
