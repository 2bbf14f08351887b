import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InMemoryClusterView } from '../cluster/in-memory-view.ts';
import type { WorkloadChange } from '../core/types.ts';
import { GuardError } from '../errors.ts';
import { type Interpretation, interpretRequest } from './interpret.ts';
import { placeholderNodes } from './node-eligibility.ts';
import { type AdmissionRequest, parseAdmissionReview } from './review.ts';

type Json = Record<string, unknown>;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(`../../test/fixtures/admission/${name}.json`, import.meta.url), 'utf8')) as Json;
}

function request(name: string, edit?: (review: { request: Json & { object: Json; oldObject: Json } }) => void): AdmissionRequest {
  const review = fixture(name) as { request: Json & { object: Json; oldObject: Json } };
  edit?.(review);
  return parseAdmissionReview(review);
}

const emptyView = () => new InMemoryClusterView(placeholderNodes(3));

function change(i: Interpretation): WorkloadChange {
  if (i.type !== 'change') throw new Error(`expected a change, got ${i.type}`);
  return i.change;
}

const interpret = (req: AdmissionRequest, view = emptyView()) => interpretRequest(req, { view, scaleResources: [] });

describe('interpretRequest: counting each kind', () => {
  it('counts a Deployment CREATE with its default 25% surge and its pods service account', () => {
    const c = change(interpret(request('deployment-create-agent')));
    expect(c.operation).toBe('CREATE');
    expect(c.before).toBeNull();
    expect(c.after).toEqual({ steady: 2, extra: { type: 'surge-percent', percent: 25 } });
    expect(c.createsWorkload).toBe(true);
    expect(c.clamp).toEqual({ path: '/spec/replicas', present: true });
    expect(c.podServiceAccounts).toEqual([{ namespace: 'agents', name: 'agent-1', field: 'spec.template.spec' }]);
    expect(c.pods?.serviceAccounts).toEqual(['agent-1']);
    expect(c.pods?.fingerprints.map((f) => f.image)).toEqual(['registry.example/agent']);
    expect(c.ref).toMatchObject({ group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'agent-web' });
  });

  it('reads patches, replaces and applies as UPDATEs of the whole object', () => {
    for (const name of [
      'deployment-patch-strategic-agent-10',
      'deployment-patch-merge-agent-10',
      'deployment-patch-json-agent-10',
      'deployment-replace-agent-10',
    ]) {
      const c = change(interpret(request(name)));
      expect([c.before?.steady, c.after?.steady], name).toEqual([3, 10]);
      expect(c.podServiceAccounts, name).toEqual([]);
    }
  });

  it('sees the later server-side apply calls as changing nothing', () => {
    const first = change(interpret(request('deployment-apply-server-agent-10')));
    expect([first.before?.steady, first.after?.steady]).toEqual([3, 10]);
    for (const n of ['-2', '-3', '-4']) {
      const c = change(interpret(request(`deployment-apply-server-agent-10${n}`)));
      expect([c.before?.steady, c.after?.steady]).toEqual([10, 10]);
      expect(c.before?.extra).toEqual(c.after?.extra);
    }
  });

  it('reads a Scale, `spec: {}` meaning 0, and keys it to the parent', () => {
    const up = change(interpret(request('deployment-scale-agent-10')));
    expect([up.before?.steady, up.after?.steady]).toEqual([2, 10]);
    expect(up.ref).toMatchObject({ kind: 'Deployment', name: 'agent-web' });
    expect(up.ref.uid).toBeTruthy();
    const zero = change(interpret(request('deployment-scale-agent-0')));
    expect([zero.before?.steady, zero.after?.steady]).toEqual([10, 0]);
    const back = change(interpret(request('deployment-scale-agent-3')));
    expect([back.before?.steady, back.after?.steady]).toEqual([0, 3]);
    expect(back.clamp).toEqual({ path: '/spec/replicas', present: true });
    expect(zero.clamp).toEqual({ path: '/spec/replicas', present: false });
  });

  it("marks a Scale of a never-seen parent as unknown, and takes the parent's surge when seen", () => {
    const unseen = change(interpret(request('deployment-scale-agent-10')));
    expect(unseen.unknownFacts.join()).toMatch(/Deployment agents\/agent-web .* has not been seen/);
    const view = emptyView();
    const created = change(interpret(request('deployment-create-agent')));
    view.observe(created.ref, {
      ref: created.ref,
      count: created.after ?? { steady: 0, extra: { type: 'none' } },
      serviceAccounts: ['agent-1'],
      fingerprints: [],
    });
    const seen = change(interpret(request('deployment-scale-agent-10'), view));
    expect(seen.unknownFacts).toEqual([]);
    expect(seen.after?.extra).toEqual({ type: 'surge-percent', percent: 25 });
  });

  it('reads the Scale of every built-in scalable kind', () => {
    for (const [name, kind] of [
      ['replicaset-scale-agent-10', 'ReplicaSet'],
      ['statefulset-scale-agent-10', 'StatefulSet'],
      ['replicationcontroller-scale-agent-10', 'ReplicationController'],
    ] as const) {
      const c = change(interpret(request(name)));
      expect(c.ref.kind, name).toBe(kind);
      expect([c.before?.steady, c.after?.steady], name).toEqual([2, 10]);
    }
  });

  it('counts ReplicaSets, StatefulSets and ReplicationControllers by replicas', () => {
    for (const name of ['replicaset-create-agent', 'statefulset-create-agent', 'replicationcontroller-create-agent']) {
      expect(change(interpret(request(name))).after, name).toEqual({ steady: 2, extra: { type: 'none' } });
    }
  });

  it('counts a Job as min(parallelism, completions), 0 while suspended', () => {
    expect(change(interpret(request('job-create-agent-parallelism-5'))).after?.steady).toBe(5);
    const few = request('job-create-agent-parallelism-5', (r) => {
      (r.request.object.spec as Json).completions = 2;
    });
    expect(change(interpret(few)).after?.steady).toBe(2);
    const suspended = request('job-create-agent-parallelism-5', (r) => {
      (r.request.object.spec as Json).suspend = true;
    });
    expect(change(interpret(suspended)).after?.steady).toBe(0);
    expect(change(interpret(few)).clamp).toEqual({ path: '/spec/parallelism', present: true });
  });

  it("counts a CronJob by its job template, overlapping when concurrencyPolicy allows, and checks its template's account", () => {
    const c = change(interpret(request('cronjob-create-agent')));
    expect(c.after).toEqual({ steady: 2, extra: { type: 'cronjob-allow' } });
    expect(c.clamp?.path).toBe('/spec/jobTemplate/spec/parallelism');
    expect(c.podServiceAccounts[0]?.field).toBe('spec.jobTemplate.spec.template.spec');
    const forbid = request('cronjob-create-agent', (r) => {
      (r.request.object.spec as Json).concurrencyPolicy = 'Forbid';
    });
    expect(change(interpret(forbid)).after?.extra).toEqual({ type: 'none' });
    const suspended = request('cronjob-create-agent', (r) => {
      (r.request.object.spec as Json).suspend = true;
    });
    expect(change(interpret(suspended)).after?.steady).toBe(0);
  });

  it('counts a DaemonSet by its eligible nodes, so widening the node selector is growth', () => {
    const view = new InMemoryClusterView([
      ...placeholderNodes(3),
      { name: 'gpu-1', labels: { 'kubernetes.io/os': 'linux', gpu: 'true' } },
    ]);
    expect(change(interpret(request('daemonset-create-agent'), view)).after?.steady).toBe(4);
    const narrow = (r: { request: Json & { object: Json; oldObject: Json } }) => {
      const spec = ((r.request.object.spec as Json).template as Json).spec as Json;
      spec.nodeSelector = { gpu: 'true' };
    };
    expect(change(interpret(request('daemonset-create-agent', narrow), view)).after?.steady).toBe(1);
    const widened = request('daemonset-create-agent', (r) => {
      r.request.operation = 'UPDATE';
      r.request.oldObject = structuredClone(r.request.object);
      const spec = ((r.request.oldObject.spec as Json).template as Json).spec as Json;
      spec.nodeSelector = { gpu: 'true' };
    });
    const c = change(interpret(widened, view));
    expect([c.before?.steady, c.after?.steady]).toEqual([1, 4]);
    expect(c.clamp).toBeNull();
    const affinity = request('daemonset-create-agent', (r) => {
      const spec = ((r.request.object.spec as Json).template as Json).spec as Json;
      spec.affinity = {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }],
          },
        },
      };
    });
    expect(change(interpret(affinity, view)).after?.steady).toBe(3);
  });

  it('counts a bare Pod as one instance that cannot be clamped', () => {
    const c = change(interpret(request('pod-create-agent')));
    expect(c.after).toEqual({ steady: 1, extra: { type: 'none' } });
    expect(c.clamp).toBeNull();
    expect(c.podServiceAccounts).toEqual([{ namespace: 'agents', name: 'agent-1', field: 'spec' }]);
    expect(change(interpret(request('pod-create-generatename-agent'))).ref.name).toBe('agent-pod-gx6x8');
  });

  it("judges an HPA by its ceiling against its target's current count", () => {
    const alone = change(interpret(request('hpa-create-agent-max-50')));
    expect(alone.after?.steady).toBe(50);
    expect(alone.before).toBeNull();
    expect(alone.createsWorkload).toBe(false);
    expect(alone.clamp).toMatchObject({ path: '/spec/maxReplicas', minimum: 1 });
    const view = emptyView();
    const created = change(interpret(request('deployment-create-agent')));
    view.observe(created.ref, {
      ref: created.ref,
      count: created.after ?? { steady: 0, extra: { type: 'none' } },
      serviceAccounts: [],
      fingerprints: [],
    });
    const withTarget = change(interpret(request('hpa-create-agent-max-50'), view));
    expect(withTarget.before?.steady).toBe(2);
    const patch = change(interpret(request('hpa-patch-agent-max-100')));
    expect([patch.before?.steady, patch.after?.steady]).toEqual([50, 100]);
  });

  it('sees a DELETE as leaving nothing', () => {
    const c = change(interpret(request('deployment-delete-agent')));
    expect(c.after).toBeNull();
    expect(c.before?.steady).toBe(4);
  });

  it('does not count subresources other than scale', () => {
    expect(interpret(request('pod-eviction-admin'))).toMatchObject({ type: 'not-counted' });
  });

  it('reports a resource it does not understand', () => {
    expect(interpret(request('serviceaccount-annotate-agent'))).toMatchObject({
      type: 'unknown-kind',
      resource: 'serviceaccounts',
    });
  });

  it('reads configured scale resources through their Scale and their replicas path', () => {
    const scaleResources = [{ group: 'example.com', resource: 'agentpools', kind: 'AgentPool', replicasPath: 'spec.size' }];
    const scaleReq = request('deployment-scale-agent-10', (r) => {
      r.request.resource = { group: 'example.com', version: 'v1', resource: 'agentpools' };
    });
    const s = change(interpretRequest(scaleReq, { view: emptyView(), scaleResources }));
    expect(s.ref.kind).toBe('AgentPool');
    expect(s.after?.steady).toBe(10);
    const body = request('deployment-create-agent', (r) => {
      r.request.resource = { group: 'example.com', version: 'v1', resource: 'agentpools' };
      r.request.kind = { group: 'example.com', version: 'v1', kind: 'AgentPool' };
      r.request.object = { metadata: { name: 'pool' }, spec: { size: 7 } };
    });
    const c = change(interpretRequest(body, { view: emptyView(), scaleResources }));
    expect(c.after?.steady).toBe(7);
    expect(c.clamp).toEqual({ path: '/spec/size', present: true });
  });
});

describe('interpretRequest: what the agent writes besides counts', () => {
  it('re-checks a pod template only when its service account changes', () => {
    const same = change(interpret(request('deployment-patch-merge-agent-10')));
    expect(same.podServiceAccounts).toEqual([]);
    const switched = request('deployment-patch-merge-agent-10', (r) => {
      const spec = ((r.request.object.spec as Json).template as Json).spec as Json;
      delete spec.serviceAccountName;
      delete spec.serviceAccount;
    });
    expect(change(interpret(switched)).podServiceAccounts).toEqual([
      { namespace: 'agents', name: 'default', field: 'spec.template.spec' },
    ]);
  });

  it('lists replica-guard.io annotations the write adds, changes or removes, except the justification', () => {
    const req = request('deployment-patch-merge-agent-10', (r) => {
      const meta = r.request.object.metadata as Json;
      meta.annotations = {
        ...(meta.annotations as Json),
        'replica-guard.io/justification': 'queue depth tripled',
        'replica-guard.io/exempt': 'true',
      };
    });
    expect(change(interpret(req)).reservedAnnotationChanges).toEqual(['replica-guard.io/exempt']);
    const i = interpret(req);
    expect(i.type === 'change' && i.justification).toBe('queue depth tripled');
  });

  it('refuses an object of the wrong shape with RG_ERR_BAD_OBJECT naming the field', () => {
    const bad = request('deployment-patch-merge-agent-10', (r) => {
      (r.request.object.spec as Json).replicas = 'ten';
    });
    expect(() => interpret(bad)).toThrow(GuardError);
    try {
      interpret(bad);
    } catch (err) {
      expect(err).toMatchObject({ code: 'RG_ERR_BAD_OBJECT' });
      expect(String((err as Error).message)).toMatch(/^object\.spec\.replicas: /);
    }
  });
});

describe('interpretRequest: custom resources counted by paths', () => {
  it('counts a mapped resource by its paths and checks the accounts of its pod templates', async () => {
    const { mappedKind } = await import('../cluster/kube-view.ts');
    const rayCluster = mappedKind({
      group: 'ray.io',
      version: 'v1',
      resource: 'rayclusters',
      kind: 'RayCluster',
      countPaths: ['spec.workerGroupSpecs[].replicas'],
      fixedCount: 1,
      podTemplatePaths: ['spec.headGroupSpec.template', 'spec.workerGroupSpecs[].template'],
    });
    const template = (sa: string) => ({ spec: { serviceAccountName: sa, containers: [{ name: 'ray', image: 'rayproject/ray:2' }] } });
    const req = request('deployment-create-agent', (r) => {
      r.request.resource = { group: 'ray.io', version: 'v1', resource: 'rayclusters' };
      r.request.kind = { group: 'ray.io', version: 'v1', kind: 'RayCluster' };
      r.request.name = 'ray';
      r.request.object = {
        metadata: { name: 'ray', namespace: 'agents', uid: 'uid-ray' },
        spec: {
          headGroupSpec: { template: template('agent-1') },
          workerGroupSpecs: [
            { replicas: 3, template: template('agent-1') },
            { replicas: 4, template: template('other') },
          ],
        },
      };
    });
    const i = interpretRequest(req, { view: emptyView(), scaleResources: [], customKinds: [rayCluster] });
    const c = change(i);
    expect(c.ref).toMatchObject({ group: 'ray.io', kind: 'RayCluster', name: 'ray' });
    expect(c.after?.steady).toBe(8);
    expect(c.createsWorkload).toBe(true);
    expect(c.clamp).toBeNull();
    expect(c.podServiceAccounts.map((s) => s.name).sort()).toEqual(['agent-1', 'agent-1', 'other']);
    expect(interpretRequest(req, { view: emptyView(), scaleResources: [] })).toMatchObject({ type: 'unknown-kind' });
  });
});
