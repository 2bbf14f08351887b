import { afterEach, describe, expect, it } from 'vitest';
import type { LoadSource } from '../src/load/load-source.ts';
import { ADMIN, AGENT, modify, review, scaleReview, setPath } from './helpers/fixtures.ts';
import {
  causesOf,
  episodesOf,
  type ErrorBody,
  type GuardOptions,
  patchOf,
  policies,
  policy,
  type ReviewAnswer,
  type TestGuard,
  testGuard,
} from './helpers/guard.ts';
import { metricValue, parseExposition, sampleValue } from './helpers/telemetry.ts';

const guards: TestGuard[] = [];
afterEach(async () => {
  await Promise.all(guards.splice(0).map((g) => g.close()));
});
function guard(options: GuardOptions): TestGuard {
  const g = testGuard(options);
  guards.push(g);
  return g;
}

/** need 1 + headroom 3, but never more than one instance per workload: every growth channel exceeds it. */
const TIGHT = policy('tight', { mode: 'enforce', need: { static: 1 }, limits: { headroom: 3, perWorkload: 1 } });
/** Room for the recorded agent's whole story: need 3 + headroom 7 = perWorkload 10. */
const ROOMY = policy('roomy', { mode: 'enforce', need: { static: 3 }, limits: { headroom: 7, perWorkload: 10 } });
const CLAMP4 = policy('clamp4', { mode: 'clamp', need: { static: 2 }, limits: { headroom: 2, perWorkload: 4 } });

function expectDenied(answer: ReviewAnswer): void {
  expect(answer.allowed).toBe(false);
  expect(answer.status?.code).toBe(403);
  expect(answer.status?.reason).toBe('Forbidden');
  expect(answer.patch).toBeUndefined();
}

describe('non-agents take the fast path', () => {
  it('allows an admin create and the HPA controller scaling up, with no audit line', async () => {
    // A glob that would match every service account: controllers are never agents all the same.
    let needCalls = 0;
    const g = guard({
      policies: policy('everyone', { mode: 'enforce', agents: { serviceAccounts: ['*:*'] }, limits: { perWorkload: 0 } }),
      loadSource: {
        need: async () => {
          needCalls++;
          return { kind: 'unmeasured' };
        },
      },
    });
    const admin = await g.review('validate', review('deployment-create-admin'));
    expect(admin).toEqual({ uid: admin.uid, allowed: true });
    const hpa = await g.review('validate', review('deployment-scale-hpa-controller', { replicas: 50 }));
    expect(hpa).toEqual({ uid: hpa.uid, allowed: true });
    const mutate = await g.review('mutate', review('deployment-create-admin'));
    expect(mutate.patch).toBeUndefined();
    expect(g.audits()).toEqual([]);
    expect(needCalls).toBe(0);
    expect(await metricValue(g.metrics, 'replica_guard_admission_duration_seconds_count', { webhook: 'validate', path: 'fast' })).toBe(2);
    expect(await metricValue(g.metrics, 'replica_guard_admission_duration_seconds_count', { webhook: 'validate', path: 'agent' })).toBeUndefined();
  });
});

describe('an agent within its allowance', () => {
  it("allows the agent's deployment create and records one episode", async () => {
    const g = guard({ policies: policy('p', { mode: 'enforce', need: { static: 2 }, limits: { headroom: 1, perWorkload: 4 } }) });
    const answer = await g.review('validate', review('deployment-create-agent'));
    expect(answer.allowed).toBe(true);
    expect(answer.status).toBeUndefined();
    expect(g.lastAudit()).toMatchObject({
      agent: AGENT,
      operation: 'CREATE',
      kind: 'Deployment',
      namespace: 'agents',
      name: 'agent-web',
      from: 0,
      to: 2,
      need: 2,
      allowance: 3,
      verdict: 'allowed',
      policy: 'p',
      episode: 'recorded',
    });
    const episodes = await episodesOf(g);
    expect(episodes).toHaveLength(1);
    expect(episodes[0]).toMatchObject({ from: 0, requested: 2, admitted: 2, verdict: 'allowed', need: 2 });
  });
});

describe('every growth channel is denied under enforce with a small cap', () => {
  const channels: readonly (readonly [string, number, string | undefined])[] = [
    ['deployment-scale-agent-10', 10, 'spec.replicas'],
    ['deployment-patch-strategic-agent-10', 10, 'spec.replicas'],
    ['deployment-patch-merge-agent-10', 10, 'spec.replicas'],
    ['deployment-patch-json-agent-10', 10, 'spec.replicas'],
    ['deployment-replace-agent-10', 10, 'spec.replicas'],
    ['deployment-apply-server-agent-10', 10, 'spec.replicas'],
    ['replicaset-scale-agent-10', 10, 'spec.replicas'],
    ['statefulset-scale-agent-10', 10, 'spec.replicas'],
    ['replicationcontroller-scale-agent-10', 10, 'spec.replicas'],
    ['job-create-agent-parallelism-5', 5, 'spec.parallelism'],
    ['cronjob-create-agent', 2, 'spec.jobTemplate.spec.parallelism'],
    ['hpa-create-agent-max-50', 50, 'spec.maxReplicas'],
    ['hpa-patch-agent-max-100', 100, 'spec.maxReplicas'],
    ['daemonset-create-agent', 3, undefined], // one pod on each of the 3 configured nodes
  ];

  it.each(channels)('%s: 403 naming the request, the need and the limit', async (name, asked, field) => {
    const g = guard({ policies: TIGHT, nodeCount: 3 });
    const body = review(name);
    const answer = await g.review('validate', body);
    expectDenied(answer);
    expect(answer.uid).toBe(body.request.uid);
    const message = answer.status?.message ?? '';
    expect(message).toContain(`asked for ${asked}`);
    expect(message).toMatch(/need (is )?\d/);
    expect(message).toContain('perWorkload 1');
    expect(message).toContain('policy tight');
    const causes = causesOf(answer);
    expect(causes).toMatchObject({ Requested: String(asked), Allowance: '1', Policy: 'tight' });
    expect(causes.Need).toMatch(/^\d+$/);
    expect(causes.Limit).toMatch(/^perWorkload/);
    const requested = answer.status?.details?.causes.find((c) => c.reason === 'Requested');
    expect(requested?.field).toBe(field);
    expect(answer.auditAnnotations).toMatchObject({ verdict: 'denied', policy: 'tight', limit: 'perWorkload' });
    expect(g.lastAudit()).toMatchObject({ verdict: 'denied', to: asked, allowance: 1, limit: 'perWorkload', episode: 'recorded' });
    // What the agent may do instead, in the terms of what it wrote.
    if (name === 'daemonset-create-agent') expect(message).toContain('Narrow its nodeSelector or node affinity to at most 1 nodes');
    else if (field) expect(message).toMatch(new RegExp(`Ask for at most 1 \\(${field.replace(/\./g, '\\.')}: 1\\)|It may not grow now`));
  });

  it('counts a DaemonSet by the configured nodes: one node fits a cap of 1', async () => {
    const g = guard({ policies: TIGHT, nodeCount: 1 });
    expect((await g.review('validate', review('daemonset-create-agent'))).allowed).toBe(true);
    expect(g.lastAudit()).toMatchObject({ kind: 'DaemonSet', to: 1, verdict: 'allowed' });
  });

  it('denies a bare Pod beyond workloadsPerFamily once the family holds a workload', async () => {
    const g = guard({
      policies: policy('few', { mode: 'enforce', need: { static: 1 }, limits: { headroom: 3, perWorkload: 10, workloadsPerFamily: 1 } }),
    });
    expect((await g.review('validate', review('pod-create-agent'))).allowed).toBe(true);
    // The first Pod is now the family's one workload: a Deployment would be its second.
    const second = await g.review('validate', review('deployment-create-agent'));
    expectDenied(second);
    expect(second.status?.message).toMatch(/creating Deployment agents\/agent-web with 2 instances/);
    expect(second.status?.message).toMatch(/family already has 1 workload/);
    const g2 = guard({
      policies: policy('few', { mode: 'enforce', need: { static: 1 }, limits: { headroom: 3, perWorkload: 10, workloadsPerFamily: 1 } }),
    });
    expect((await g2.review('validate', review('deployment-create-agent'))).allowed).toBe(true);
    const pod = await g2.review('validate', review('pod-create-agent'));
    expectDenied(pod);
    expect(pod.status?.message).toMatch(/creating Pod agents\/agent-pod with 1 instance/);
    expect(pod.status?.message).toMatch(/policy few allows 1/);
    // The Pod runs the same account, image and command as agent-web: a clone, whose need is 0.
    expect(causesOf(pod)).toMatchObject({ Requested: '1', Need: '0', Allowance: '3' });
    expect(causesOf(pod).Limit).toMatch(/^workloadsPerFamily/);
    expect(pod.auditAnnotations).toMatchObject({ verdict: 'denied', limit: 'workloadsPerFamily' });
  });
});

describe('the embedded view and requests that do not commit', () => {
  // A workload in the family by provenance only (it runs as another account with another
  // image), and requests the guard admits that the apiserver does not carry out.
  const FAMILY8 = policy('fam', {
    mode: 'enforce',
    need: { static: 100 },
    limits: { perFamily: 8 },
    podServiceAccounts: ['{self}', 'worker'],
  });
  const API = '11111111-1111-4111-8111-111111111111';
  const WEB = '33333333-3333-4333-8333-333333333333';
  const create = (name: string, uid: string, replicas: number, account: string, image: string) =>
    review('deployment-create-agent', {
      replicas,
      set: [
        ['name', name],
        ['object.metadata.name', name],
        ['object.metadata.uid', uid],
        ['object.spec.template.spec.serviceAccountName', account],
        ['object.spec.template.spec.serviceAccount', account],
        ['object.spec.template.spec.containers.0.image', image],
      ],
    });
  const failedWrites = {
    // The apiserver calls the webhooks before it answers AlreadyExists.
    'a CREATE of a name that exists': create('api', '22222222-2222-4222-8222-222222222222', 1, 'worker', 'registry.local/api:2'),
    // Another webhook refuses the DELETE after the guard admitted it.
    'a DELETE another webhook refuses': review('deployment-delete-agent', {
      set: [
        ['name', 'api'],
        ['oldObject.metadata.name', 'api'],
        ['oldObject.metadata.uid', API],
      ],
    }),
  };

  for (const [what, failed] of Object.entries(failedWrites)) {
    it(`keeps a live workload in the family after ${what}`, async () => {
      const g = guard({ policies: FAMILY8 });
      expect((await g.review('validate', create('api', API, 4, 'worker', 'registry.local/api:1'))).allowed).toBe(true);
      expect((await g.review('validate', create('agent-web', WEB, 1, 'agent-1', 'registry.example/agent:1.0'))).allowed).toBe(true);
      await g.review('validate', failed);
      // The agent's next write shows the real api (4 replicas) again.
      expect((await g.review('validate', scaleReview('api', 4, 4, API))).allowed).toBe(true);
      // api's 4 + agent-web's 5 = 9 > perFamily 8, however often the family is walked.
      for (let attempt = 0; attempt < 2; attempt++) {
        const grow = await g.review('validate', scaleReview('agent-web', 1, 5 + attempt, WEB));
        expectDenied(grow);
        expect(grow.status?.message).toMatch(/perFamily/);
      }
    });
  }
});

describe('growth is judged, not calls', () => {
  const ssa = [
    'deployment-apply-server-agent-10',
    'deployment-apply-server-agent-10-2',
    'deployment-apply-server-agent-10-3',
    'deployment-apply-server-agent-10-4',
  ];

  it('server-side apply under a policy allowing 10: one episode, three no-ops', async () => {
    const g = guard({ policies: ROOMY });
    for (const name of ssa) expect((await g.review('validate', review(name))).allowed).toBe(true);
    expect(g.audits().map((a) => [a.from, a.to, a.episode])).toEqual([
      [3, 10, 'recorded'],
      [10, 10, undefined],
      [10, 10, undefined],
      [10, 10, undefined],
    ]);
    expect(await episodesOf(g)).toHaveLength(1);
  });

  it('server-side apply under a cap of 5: the growth is denied, the no-ops that add nothing are allowed', async () => {
    const g = guard({ policies: policy('five', { mode: 'enforce', need: { static: 3 }, limits: { headroom: 7, perWorkload: 5 } }) });
    const answers: ReviewAnswer[] = [];
    for (const name of ssa) answers.push(await g.review('validate', review(name)));
    expect(answers.map((a) => a.allowed)).toEqual([false, true, true, true]);
    for (const a of answers.slice(1)) expect(a.warnings?.join(' ')).toMatch(/still runs 10, above perWorkload 5/);
    expect(await episodesOf(g)).toHaveLength(1);
  });

  // The Scale's parent was never seen by this guard: `caps` judges it by the caps alone.
  const capped = (cap: number) => policy('cap', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { perWorkload: cap } });

  it('allows a scale to 0 (`spec: {}`) under any cap, and judges the way back up as growth', async () => {
    for (const cap of [0, 1, 2]) {
      const g = guard({ policies: capped(cap) });
      const down = await g.review('validate', review('deployment-scale-agent-0'));
      expect(down.allowed).toBe(true);
      expect(g.lastAudit()).toMatchObject({ from: 10, to: 0 });
      expect(g.lastAudit().episode).toBeUndefined();
      const up = await g.review('validate', review('deployment-scale-agent-3'));
      expectDenied(up);
      expect(up.status?.message).toContain('from 0 to 3');
      expect(g.lastAudit()).toMatchObject({ from: 0, to: 3, verdict: 'denied', episode: 'recorded' });
    }
    const g = guard({ policies: capped(5) });
    expect((await g.review('validate', review('deployment-scale-agent-3'))).allowed).toBe(true);
    expect(await episodesOf(g)).toMatchObject([{ from: 0, requested: 3, admitted: 3, verdict: 'allowed' }]);
  });

  it("a Scale of a workload the guard has never seen follows onUnavailable, until the view knows it", async () => {
    const g = guard({ policies: policy('strict', { mode: 'enforce', need: { onUnavailable: 'deny' }, limits: { perWorkload: 10 } }) });
    const blind = await g.review('validate', review('deployment-scale-agent-3', { replicas: 3, oldReplicas: 2 }));
    expectDenied(blind);
    expect(blind.auditAnnotations).toMatchObject({ limit: 'onUnavailable' });
    expect(blind.status?.message).toMatch(/has not been seen/);
    // The guard sees the agent create it: now the parent of the Scale is known.
    expect((await g.review('validate', review('deployment-create-agent'))).allowed).toBe(true);
    expect((await g.review('validate', review('deployment-scale-agent-3', { replicas: 3, oldReplicas: 2 }))).allowed).toBe(true);
    const hold = guard({ policies: policy('hold', { mode: 'enforce', need: { onUnavailable: 'hold' }, limits: { headroom: 1, perWorkload: 10 } }) });
    const held = await hold.review('validate', review('deployment-scale-agent-10'));
    expectDenied(held);
    expect(causesOf(held)).toMatchObject({ Need: '2', Allowance: '3' });
  });
});

describe('clamp mode', () => {
  it('/mutate lowers a Scale and a full Deployment to the allowance with a replace, and warns', async () => {
    const g = guard({ policies: CLAMP4 });
    for (const name of ['deployment-scale-agent-10', 'deployment-patch-merge-agent-10']) {
      const answer = await g.review('mutate', review(name));
      expect(answer.allowed).toBe(true);
      expect(answer.patchType).toBe('JSONPatch');
      expect(patchOf(answer)).toEqual([{ op: 'replace', path: '/spec/replicas', value: 4 }]);
      expect(answer.warnings?.join(' ')).toMatch(/lowered spec\.replicas from 10 to 4.*clamp4/);
      expect(answer.auditAnnotations).toMatchObject({ verdict: 'clamped', policy: 'clamp4' });
    }
    // The mutating call records nothing: the validating call does.
    expect(await episodesOf(g)).toEqual([]);
  });

  it('/mutate adds the count where the object omits it', async () => {
    const g = guard({ policies: policy('zero', { mode: 'clamp', limits: { perWorkload: 0 } }) });
    // A Deployment without spec.replicas runs 1; the field is absent, so the patch must add it.
    const answer = await g.review('mutate', review('deployment-create-agent-mutating-phase', { replicas: null }));
    expect(patchOf(answer)).toEqual([{ op: 'add', path: '/spec/replicas', value: 0 }]);
    const job = await g.review('mutate', review('job-create-agent-parallelism-5', { unset: ['object.spec.parallelism'] }));
    expect(patchOf(job)).toEqual([{ op: 'add', path: '/spec/parallelism', value: 0 }]);
  });

  it('/mutate lowers an HPA ceiling and its floor with it', async () => {
    const g = guard({ policies: CLAMP4 });
    const body = review('hpa-create-agent-max-50', { set: [['object.spec.minReplicas', 6]] });
    const answer = await g.review('mutate', body);
    expect(patchOf(answer)).toEqual([
      { op: 'replace', path: '/spec/maxReplicas', value: 4 },
      { op: 'replace', path: '/spec/minReplicas', value: 4 },
    ]);
  });

  it("/validate allows the clamped object and records one episode with the agent's own request", async () => {
    const g = guard({ policies: CLAMP4 });
    const original = review('deployment-scale-agent-10');
    const mutated = await g.review('mutate', original);
    expect(patchOf(mutated)).toEqual([{ op: 'replace', path: '/spec/replicas', value: 4 }]);
    // What the apiserver sends the validating webhook after applying the patch.
    const clamped = modify(original, { uid: original.request.uid, replicas: 4 });
    const answer = await g.review('validate', clamped);
    expect(answer.allowed).toBe(true);
    expect(g.lastAudit()).toMatchObject({ webhook: 'validate', from: 2, to: 10, episode: 'recorded' });
    expect(await episodesOf(g)).toMatchObject([{ from: 2, requested: 10, admitted: 4, verdict: 'clamped' }]);
  });

  it('/validate denies an object the mutating webhook did not lower', async () => {
    const g = guard({ policies: CLAMP4 });
    const answer = await g.review('validate', review('deployment-scale-agent-10'));
    expectDenied(answer);
    expect(answer.status?.message).toMatch(/clamp mode.*allows at most 4/);
    expect(answer.auditAnnotations).toMatchObject({ verdict: 'denied', policy: 'clamp4' });
  });

  it('a reinvocation of /mutate never overwrites the held request', async () => {
    const g = guard({ policies: CLAMP4 });
    const original = review('deployment-scale-agent-10');
    const uid = original.request.uid;
    await g.review('mutate', original);
    // Reinvoked with the already clamped object: nothing left to lower.
    const again = await g.review('mutate', modify(original, { uid, replicas: 4 }));
    expect(again.allowed).toBe(true);
    expect(again.patch).toBeUndefined();
    // Reinvoked after another webhook raised it to 8: lowered again, but the agent asked for 10.
    const raised = await g.review('mutate', modify(original, { uid, replicas: 8 }));
    expect(patchOf(raised)).toEqual([{ op: 'replace', path: '/spec/replicas', value: 4 }]);
    await g.review('validate', modify(original, { uid, replicas: 4 }));
    expect(g.lastAudit()).toMatchObject({ to: 10, episode: 'recorded' });
    expect(await episodesOf(g)).toMatchObject([{ requested: 10, admitted: 4 }]);
  });

  it('denies what cannot be clamped: a Pod and a DaemonSet over the limit', async () => {
    const g = guard({ policies: policy('c', { mode: 'clamp', limits: { perWorkload: 0 } }), nodeCount: 3 });
    for (const name of ['pod-create-agent', 'daemonset-create-agent']) {
      const mutated = await g.review('mutate', review(name));
      expect(mutated.patch).toBeUndefined();
      const answer = await g.review('validate', review(name));
      expectDenied(answer);
      expect(answer.status?.message).toMatch(/cannot be clamped/);
      expect(answer.status?.message).toMatch(
        /The policy allows no new instances of it now \(allowance 0\)/,
      );
    }
  });
});

describe('audit mode', () => {
  it('allows growth past the allowance with a warning naming the policy, and records it', async () => {
    const g = guard({ policies: policy('observer', { mode: 'audit', need: { static: 2 }, limits: { perWorkload: 4 } }) });
    const answer = await g.review('validate', review('deployment-scale-agent-10'));
    expect(answer.allowed).toBe(true);
    expect(answer.warnings?.join(' ')).toMatch(/policy observer would deny/);
    expect(g.lastAudit()).toMatchObject({ verdict: 'allowed', to: 10, episode: 'recorded', policy: 'observer' });
    // An audit policy never clamps: the mutating call is answered without a decision.
    const mutate = await g.review('mutate', review('deployment-scale-agent-10'));
    expect(mutate.patch).toBeUndefined();
    expect(await metricValue(g.metrics, 'replica_guard_admission_duration_seconds_count', { webhook: 'mutate', path: 'unclamped' })).toBe(1);
  });
});

describe('several policies matching one agent', () => {
  it('enforce and clamp: the enforce denial wins, and /mutate does not clamp', async () => {
    const g = guard({
      policies: policies(
        policy('enforcer', { mode: 'enforce', limits: { perWorkload: 6 } }),
        policy('trimmer', { mode: 'clamp', limits: { perWorkload: 8 } }),
      ),
    });
    const answer = await g.review('validate', review('deployment-patch-merge-agent-10'));
    expectDenied(answer);
    expect(answer.auditAnnotations).toMatchObject({ policy: 'enforcer', limit: 'perWorkload' });
    expect((await g.review('mutate', review('deployment-patch-merge-agent-10'))).patch).toBeUndefined();
  });

  it('two clamp policies: the lowest allowance applies', async () => {
    const g = guard({
      policies: policies(
        policy('loose', { mode: 'clamp', limits: { perWorkload: 6 } }),
        policy('strict', { mode: 'clamp', limits: { perWorkload: 4 } }),
      ),
    });
    const original = review('deployment-patch-merge-agent-10');
    const answer = await g.review('mutate', original);
    expect(patchOf(answer)).toEqual([{ op: 'replace', path: '/spec/replicas', value: 4 }]);
    expect(answer.auditAnnotations).toMatchObject({ policy: 'strict' });
    // 6 would pass the loose one but not the strict one.
    expectDenied(await g.review('validate', modify(original, { replicas: 6 })));
    expect((await g.review('validate', modify(original, { uid: original.request.uid, replicas: 4 }))).allowed).toBe(true);
  });

  it('audit and enforce: audit never changes the outcome, it only warns', async () => {
    const observe = policy('observer', { mode: 'audit', limits: { perWorkload: 2 } });
    const allow = guard({ policies: policies(observe, policy('enforcer', { mode: 'enforce', limits: { perWorkload: 10 } })) });
    const allowed = await allow.review('validate', review('deployment-patch-merge-agent-10'));
    expect(allowed.allowed).toBe(true);
    expect(allowed.warnings?.join(' ')).toMatch(/policy observer would deny/);
    const deny = guard({ policies: policies(observe, policy('enforcer', { mode: 'enforce', limits: { perWorkload: 5 } })) });
    const denied = await deny.review('validate', review('deployment-patch-merge-agent-10'));
    expectDenied(denied);
    expect(denied.auditAnnotations).toMatchObject({ policy: 'enforcer' });
  });
});

describe('episodes', () => {
  it('mutate + validate make one episode; the mutating call alone makes none', async () => {
    const g = guard({ policies: ROOMY });
    const body = review('deployment-patch-merge-agent-10');
    expect((await g.review('mutate', body)).allowed).toBe(true);
    expect(await episodesOf(g)).toHaveLength(0);
    expect((await g.review('validate', body)).allowed).toBe(true);
    expect(await episodesOf(g)).toHaveLength(1);
    // No policy of the agent's clamps: the mutating call is answered without a decision of its own.
    expect(g.audits().map((a) => [a.webhook, a.episode])).toEqual([['validate', 'recorded']]);
    expect(await metricValue(g.metrics, 'replica_guard_admission_duration_seconds_count', { webhook: 'mutate', path: 'unclamped' })).toBe(1);
  });

  it('the mutating call asks nothing when no policy of the agent clamps, and decides when one does', async () => {
    const asked: string[] = [];
    const counting: LoadSource = {
      need: async (query) => {
        asked.push(query.policy.name);
        return { kind: 'measured', value: 2, source: 'static' };
      },
    };
    const g = guard({ policies: policies(TIGHT), loadSource: counting });
    const unclamped = await g.review('mutate', review('deployment-scale-agent-10'));
    expect(unclamped.allowed).toBe(true);
    expect(unclamped.patch).toBeUndefined();
    expect(unclamped.warnings ?? []).toEqual([]);
    expect(asked).toEqual([]);
    expect(g.audits()).toEqual([]);
    // The validating call still denies the same request.
    expectDenied(await g.review('validate', review('deployment-scale-agent-10')));
    expect(asked).toEqual(['tight']);

    const c = guard({ policies: policies(TIGHT, CLAMP4), loadSource: counting });
    asked.length = 0;
    const clamped = await c.review('mutate', review('deployment-scale-agent-10'));
    expect(asked.sort()).toEqual(['clamp4', 'tight']);
    expect(c.audits().map((a) => a.webhook)).toEqual(['mutate']);
    expect(await metricValue(c.metrics, 'replica_guard_admission_duration_seconds_count', { webhook: 'mutate', path: 'agent' })).toBe(1);
    expect(clamped.allowed).toBe(true);
  });

  it('the same change under two resourceVersions is one episode', async () => {
    const g = guard({ policies: ROOMY });
    await g.review('validate', review('deployment-patch-merge-agent-10'));
    // The apiserver retries a conflicting patch against a newer version: new uid, new resourceVersion.
    await g.review('validate', review('deployment-patch-merge-agent-10', { resourceVersion: '999' }));
    expect(g.audits().map((a) => a.episode)).toEqual(['recorded', 'duplicate']);
    expect(await episodesOf(g)).toHaveLength(1);
  });

  it('a loop of five identical denied retries is one episode', async () => {
    const g = guard({ policies: TIGHT });
    for (let i = 0; i < 5; i++) expectDenied(await g.review('validate', review('deployment-scale-agent-10')));
    expect(g.audits().map((a) => a.episode)).toEqual(['recorded', 'duplicate', 'duplicate', 'duplicate', 'duplicate']);
    expect(await episodesOf(g)).toMatchObject([{ requested: 10, admitted: 2, verdict: 'denied' }]);
  });

  it('a dry run is decided the same way and recorded nowhere', async () => {
    const g = guard({ policies: TIGHT });
    const dry = await g.review('validate', review('deployment-dryrun-scale-agent-10'));
    expectDenied(dry);
    expect(g.lastAudit()).toMatchObject({ dryRun: true, verdict: 'denied' });
    expect(g.lastAudit().episode).toBeUndefined();
    expect(await episodesOf(g)).toEqual([]);
    // Had the dry run been recorded, this would be a duplicate.
    expectDenied(await g.review('validate', review('deployment-dryrun-scale-agent-10', { dryRun: false })));
    expect(g.lastAudit()).toMatchObject({ dryRun: false, episode: 'recorded' });
  });

  it('a dry run in clamp mode holds nothing for the validating call', async () => {
    const g = guard({ policies: CLAMP4 });
    const dry = review('deployment-dryrun-scale-agent-10');
    expect(patchOf(await g.review('mutate', dry))).toEqual([{ op: 'replace', path: '/spec/replicas', value: 4 }]);
    // The real request, clamped by its own mutating call to 4, asked for 5 this time.
    const real = review('deployment-dryrun-scale-agent-10', { dryRun: false, replicas: 5 });
    await g.review('mutate', real);
    await g.review('validate', modify(real, { uid: real.request.uid, replicas: 4 }));
    expect(await episodesOf(g)).toMatchObject([{ requested: 5, admitted: 4 }]);
  });
});

describe('identity', () => {
  const ROOMY_GUARD = (): TestGuard => guard({ policies: ROOMY });
  const runAs = (sa: string): readonly (readonly [readonly string[], unknown])[] => [
    [['object', 'spec', 'template', 'spec', 'serviceAccountName'], sa],
    [['object', 'spec', 'template', 'spec', 'serviceAccount'], sa],
  ];

  it('denies a pod template that runs as another service account', async () => {
    const g = ROOMY_GUARD();
    const answer = await g.review('validate', review('deployment-create-agent', { set: runAs('builder') }));
    expectDenied(answer);
    expect(answer.status?.message).toMatch(/service account "builder"/);
    expect(answer.auditAnnotations).toMatchObject({ limit: 'podServiceAccounts' });
    const cause = answer.status?.details?.causes.find((c) => c.reason === 'podServiceAccounts');
    expect(cause?.field).toBe('spec.template.spec.serviceAccountName');
  });

  it('a missing serviceAccountName means `default`, denied for a service-account agent', async () => {
    const g = ROOMY_GUARD();
    const answer = await g.review(
      'validate',
      review('deployment-create-agent', {
        unset: [
          ['object', 'spec', 'template', 'spec', 'serviceAccountName'],
          ['object', 'spec', 'template', 'spec', 'serviceAccount'],
        ],
      }),
    );
    expectDenied(answer);
    expect(answer.status?.message).toMatch(/service account "default"/);
  });

  it("checks a bare Pod and a CronJob's job template", async () => {
    const g = ROOMY_GUARD();
    const pod = await g.review(
      'validate',
      review('pod-create-agent', { set: [['object.spec.serviceAccountName', 'builder'], ['object.spec.serviceAccount', 'builder']] }),
    );
    expectDenied(pod);
    expect(pod.auditAnnotations).toMatchObject({ limit: 'podServiceAccounts' });
    const template = ['object', 'spec', 'jobTemplate', 'spec', 'template', 'spec'];
    const cron = await g.review(
      'validate',
      review('cronjob-create-agent', { set: [[[...template, 'serviceAccountName'], 'builder'], [[...template, 'serviceAccount'], 'builder']] }),
    );
    expectDenied(cron);
    const cause = cron.status?.details?.causes.find((c) => c.reason === 'podServiceAccounts');
    expect(cause?.field).toBe('spec.jobTemplate.spec.template.spec.serviceAccountName');
    // The untouched CronJob runs as the agent itself.
    expect((await g.review('validate', review('cronjob-create-agent'))).allowed).toBe(true);
  });

  it('allows the accounts a policy lists', async () => {
    const g = guard({
      policies: policy('shared', { mode: 'enforce', limits: { perWorkload: 10 }, podServiceAccounts: ['{self}', 'builder'] }),
    });
    expect((await g.review('validate', review('deployment-create-agent', { set: runAs('builder') }))).allowed).toBe(true);
    expectDenied(await g.review('validate', review('deployment-create-agent', { set: runAs('intruder') })));
  });

  it('denies a replica-guard.io annotation, except the justification, which the audit line keeps', async () => {
    const g = ROOMY_GUARD();
    const reserved = await g.review('validate', review('deployment-create-agent', { annotations: { 'replica-guard.io/exempt': 'true' } }));
    expectDenied(reserved);
    expect(reserved.status?.message).toContain('replica-guard.io/exempt');
    expect(reserved.auditAnnotations).toMatchObject({ limit: 'reservedAnnotations' });
    const reason = 'queue depth tripled since 09:00; 2 replicas cannot keep up';
    const justified = await g.review(
      'validate',
      review('deployment-create-agent', { annotations: { 'replica-guard.io/justification': reason } }),
    );
    expect(justified.allowed).toBe(true);
    expect(g.lastAudit()).toMatchObject({ verdict: 'allowed', justification: reason });
  });
});

describe('audit lines', () => {
  it('never carry object bodies, whatever the outcome', async () => {
    const secret = 'SECRET_TOKEN_VALUE_hunter2';
    const withSecret = (name: string, path: readonly string[]) => {
      const body = review(name);
      setPath(body.request, [...path, 'containers', '0', 'env'], [{ name: 'SECRET_TOKEN', value: secret }]);
      return body;
    };
    const template = ['object', 'spec', 'template', 'spec'];
    const failing: LoadSource = {
      need: async () => {
        throw new Error('load source exploded');
      },
    };
    const enforce = guard({ policies: TIGHT });
    const clamp = guard({ policies: CLAMP4 });
    const audit = guard({ policies: policy('observer', { mode: 'audit', limits: { perWorkload: 1 } }) });
    const broken = guard({ policies: TIGHT, loadSource: failing });
    for (const g of [enforce, clamp, audit, broken]) {
      for (const webhook of ['mutate', 'validate'] as const) {
        await g.post(`/${webhook}`, withSecret('deployment-replace-agent-10', template));
        await g.post(`/${webhook}`, withSecret('deployment-create-agent', template));
        await g.post(`/${webhook}`, withSecret('pod-create-agent', ['object', 'spec']));
        const bad = withSecret('deployment-replace-agent-10', template);
        setPath(bad.request, 'object.spec.replicas', 'ten');
        await g.post(`/${webhook}`, bad);
      }
    }
    const all = [enforce, clamp, audit, broken].flatMap((g) => g.lines);
    expect(all.filter((l) => l.msg === 'decision').length).toBeGreaterThan(10);
    expect(all.some((l) => l.level === 'error')).toBe(true);
    for (const line of all) {
      const text = JSON.stringify(line);
      expect(text).not.toContain(secret);
      expect(text).not.toContain('registry.example/agent:1.0');
      expect(text).not.toContain('managedFields');
    }
  });
});

describe('bad input', () => {
  const agentReview = () => review('deployment-scale-agent-10');
  interface BadInput {
    readonly what: string;
    readonly make: () => unknown;
    readonly code: string;
    readonly message: RegExp;
    readonly contentType?: string;
  }
  const bad = (what: string, make: () => unknown, code: string, message: RegExp, contentType?: string): BadInput => ({
    what,
    make,
    code,
    message,
    ...(contentType === undefined ? {} : { contentType }),
  });
  const cases: readonly BadInput[] = [
    bad('not JSON', () => '{"apiVersion": "admission.k8s.io/v1", ', 'RG_ERR_BAD_JSON', /JSON/),
    bad('an empty body', () => '', 'RG_ERR_BAD_JSON', /JSON/),
    bad('JSON null', () => 'null', 'RG_ERR_BAD_REVIEW', /body/),
    bad('a JSON list', () => '[]', 'RG_ERR_BAD_REVIEW', /body/),
    bad('the wrong apiVersion', () => ({ ...agentReview(), apiVersion: 'admission.k8s.io/v1beta1' }), 'RG_ERR_BAD_REVIEW', /apiVersion/),
    bad('the wrong kind', () => ({ ...agentReview(), kind: 'TokenReview' }), 'RG_ERR_BAD_REVIEW', /kind/),
    bad('no request', () => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 'RG_ERR_BAD_REVIEW', /request/),
    bad('a missing request.uid', () => review('deployment-scale-agent-10', { unset: ['uid'] }), 'RG_ERR_BAD_REVIEW', /request\.uid/),
    bad('a missing userInfo', () => review('deployment-scale-agent-10', { unset: ['userInfo'] }), 'RG_ERR_BAD_REVIEW', /userInfo/),
    bad(
      'spec.replicas "ten" on a Deployment',
      () => review('deployment-replace-agent-10', { set: [['object.spec.replicas', 'ten']] }),
      'RG_ERR_BAD_OBJECT',
      /object\.spec\.replicas/,
    ),
    bad(
      'spec.replicas "ten" on a Scale',
      () => review('deployment-scale-agent-10', { set: [['object.spec.replicas', 'ten']] }),
      'RG_ERR_BAD_OBJECT',
      /spec\.replicas/,
    ),
    bad(
      'a negative parallelism',
      () => review('job-create-agent-parallelism-5', { set: [['object.spec.parallelism', -5]] }),
      'RG_ERR_BAD_OBJECT',
      /parallelism/,
    ),
    bad(
      'a Deployment without a template',
      () => review('deployment-replace-agent-10', { unset: ['object.spec.template'] }),
      'RG_ERR_BAD_OBJECT',
      /template/,
    ),
    bad('text/plain', () => JSON.stringify(agentReview()), 'RG_ERR_BAD_CONTENT_TYPE', /application\/json/, 'text/plain'),
    bad('application/yaml', () => JSON.stringify(agentReview()), 'RG_ERR_BAD_CONTENT_TYPE', /application\/json/, 'application/yaml'),
  ];

  it.each(cases)('$what: HTTP 400 with a stable code and the reason, never an allow', async ({ make, code, message, contentType }) => {
    const g = guard({ policies: TIGHT });
    for (const path of ['/mutate', '/validate']) {
      const res = await g.post(path, make(), contentType === undefined ? {} : { contentType });
      expect(res.status).toBe(400);
      const body = res.body as ErrorBody;
      expect(body.code).toBe(code);
      expect(body.message).toMatch(message);
      expect(JSON.stringify(res.body)).not.toContain('"allowed"');
    }
    expect(await metricValue(g.metrics, 'replica_guard_errors_total', { code })).toBe(2);
  });

  it('echoes the uid of a review whose object is bad', async () => {
    const g = guard({ policies: TIGHT });
    const body = review('deployment-replace-agent-10', { set: [['object.spec.replicas', 'ten']] });
    const res = await g.post('/validate', body);
    expect(res.body).toMatchObject({ code: 'RG_ERR_BAD_OBJECT', uid: body.request.uid });
  });

  it('refuses a body over 8 MiB', async () => {
    const g = guard({ policies: TIGHT });
    const body = review('deployment-replace-agent-10', { annotations: { padding: 'x'.repeat(9 * 1024 * 1024) } });
    const res = await g.post('/validate', body);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'RG_ERR_BODY_TOO_LARGE' });
    expect((res.body as ErrorBody).message).toMatch(/larger than/);
    // An UPDATE of a 3 MiB object carries it twice and must pass.
    const big = review('deployment-replace-agent-10', {
      annotations: { padding: 'x'.repeat(3 * 1024 * 1024) },
      set: [[['oldObject', 'metadata', 'annotations', 'padding'], 'y'.repeat(3 * 1024 * 1024)]],
    });
    const ok = await g.post('/validate', big);
    expect(ok.status).toBe(200);
  });

  it('allows, with a warning and a metric, a resource the guard does not understand', async () => {
    const g = guard({ policies: TIGHT });
    const body = review('deployment-create-agent', {
      set: [
        ['kind', { group: 'example.com', version: 'v1', kind: 'Widget' }],
        ['resource', { group: 'example.com', version: 'v1', resource: 'widgets' }],
        ['requestKind', { group: 'example.com', version: 'v1', kind: 'Widget' }],
        ['requestResource', { group: 'example.com', version: 'v1', resource: 'widgets' }],
        ['object.kind', 'Widget'],
        ['object.apiVersion', 'example.com/v1'],
      ],
    });
    const answer = await g.review('validate', body);
    expect(answer.allowed).toBe(true);
    expect(answer.warnings?.join(' ')).toContain('widgets.example.com');
    expect(await metricValue(g.metrics, 'replica_guard_unknown_kind_requests_total', { resource: 'widgets.example.com' })).toBe(1);
    expect(await metricValue(g.metrics, 'replica_guard_admission_requests_total', { kind: 'other', verdict: 'allowed' })).toBe(1);
    // A non-agent writing one is none of the guard's business.
    await g.review('validate', modify(body, { userInfo: ADMIN }));
    expect(await metricValue(g.metrics, 'replica_guard_unknown_kind_requests_total', { resource: 'widgets.example.com' })).toBe(1);
  });

  it('answers HTTP 500 RG_ERR_INTERNAL when deciding fails, and logs the error', async () => {
    const g = guard({
      policies: TIGHT,
      loadSource: {
        need: async () => {
          throw new Error('load source exploded');
        },
      },
    });
    const body = review('deployment-scale-agent-10');
    const res = await g.post('/validate', body);
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({ code: 'RG_ERR_INTERNAL', uid: body.request.uid });
    expect((res.body as ErrorBody).message).not.toContain('exploded');
    const logged = g.lines.find((l) => l.level === 'error');
    expect(logged).toMatchObject({ uid: body.request.uid, err: { message: 'load source exploded' } });
    expect(String((logged?.err as { stack?: unknown }).stack)).toContain('load source exploded');
    expect(await metricValue(g.metrics, 'replica_guard_errors_total', { code: 'RG_ERR_INTERNAL' })).toBe(1);
  });

  it('answers 503 RG_ERR_NOT_READY, never an allow, without a policy set', async () => {
    const g = guard({ policies: null });
    for (const name of ['deployment-scale-agent-10', 'deployment-create-admin']) {
      const res = await g.post('/validate', review(name));
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ code: 'RG_ERR_NOT_READY' });
    }
  });

  it('answers 404 with a code for other paths', async () => {
    const g = guard({ policies: TIGHT });
    const res = await g.post('/admit', review('deployment-scale-agent-10'));
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: 'RG_ERR_NOT_FOUND' });
  });
});

describe('deadline', () => {
  /** A load source that answers only when the guard gives up on it. */
  const hanging = () => {
    const signals: AbortSignal[] = [];
    const source: LoadSource = {
      need: (_query, signal) =>
        new Promise((_resolve, reject) => {
          signals.push(signal);
          signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
    };
    return { source, signals };
  };

  it('answers the fallback verdict with RG_ERR_DEADLINE before the apiserver gives up', async () => {
    const { source, signals } = hanging();
    const g = guard({ policies: TIGHT, loadSource: source, deadlineMarginMs: 1_500 });
    const started = performance.now();
    const answer = await g.review('validate', review('deployment-scale-agent-10'), 'timeout=2s');
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(2_000);
    expectDenied(answer);
    expect(answer.status?.message).toContain('RG_ERR_DEADLINE');
    expect(answer.status?.details?.causes.map((c) => c.reason)).toContain('RG_ERR_DEADLINE');
    expect(answer.auditAnnotations).toMatchObject({ verdict: 'denied', code: 'RG_ERR_DEADLINE' });
    expect(signals.length).toBeGreaterThan(0);
    expect(signals.every((s) => s.aborted)).toBe(true);
    expect(g.lastAudit()).toMatchObject({ code: 'RG_ERR_DEADLINE', verdict: 'denied' });
    expect(await metricValue(g.metrics, 'replica_guard_errors_total', { code: 'RG_ERR_DEADLINE' })).toBe(1);
  });

  it('lets the mutating call and an audit-only policy through with a warning', async () => {
    const { source } = hanging();
    const g = guard({ policies: CLAMP4, loadSource: source, deadlineMarginMs: 1_500 });
    const mutate = await g.review('mutate', review('deployment-scale-agent-10'), 'timeout=2s');
    expect(mutate.allowed).toBe(true);
    expect(mutate.warnings?.join(' ')).toContain('RG_ERR_DEADLINE');
    const audit = guard({ policies: policy('observer', { mode: 'audit', limits: { perWorkload: 1 } }), loadSource: hanging().source, deadlineMarginMs: 1_500 });
    const validate = await audit.review('validate', review('deployment-scale-agent-10'), 'timeout=2s');
    expect(validate.allowed).toBe(true);
    expect(validate.auditAnnotations).toMatchObject({ code: 'RG_ERR_DEADLINE' });
  });
});

describe('metrics and probes on the ops app', () => {
  it('/metrics shows requests by verdict, kind and operation, and the latency histogram', async () => {
    const g = guard({ policies: policies(TIGHT) });
    await g.review('validate', review('deployment-scale-agent-10'));
    await g.review('validate', review('deployment-scale-agent-10'));
    await g.review('validate', review('deployment-create-admin'));
    await g.review('validate', review('deployment-scale-agent-0'));
    await g.post('/validate', 'nope');
    const res = await g.app.ops.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const samples = parseExposition(res.body);
    const requests = 'replica_guard_admission_requests_total';
    expect(sampleValue(samples, requests, { webhook: 'validate', verdict: 'denied', kind: 'Scale', operation: 'UPDATE' })).toBe(2);
    expect(sampleValue(samples, requests, { webhook: 'validate', verdict: 'allowed', kind: 'Scale', operation: 'UPDATE' })).toBe(1);
    expect(sampleValue(samples, requests, { webhook: 'validate', verdict: 'allowed', kind: 'Deployment', operation: 'CREATE' })).toBe(1);
    expect(sampleValue(samples, 'replica_guard_admission_duration_seconds_count', { webhook: 'validate', path: 'agent' })).toBe(3);
    expect(sampleValue(samples, 'replica_guard_admission_duration_seconds_bucket', { webhook: 'validate', path: 'agent', le: '+Inf' })).toBe(3);
    expect(sampleValue(samples, 'replica_guard_errors_total', { code: 'RG_ERR_BAD_JSON' })).toBe(1);
    for (const name of [
      'replica_guard_policy_reload_errors_total',
      'replica_guard_certificate_expiry_timestamp_seconds',
      'replica_guard_policies',
    ]) {
      expect(res.body).toContain(`# TYPE ${name} `);
    }
  });

  it('/healthz is 200 and /readyz follows readiness', async () => {
    const g = guard({ policies: TIGHT });
    expect((await g.app.ops.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const ready = await g.app.ops.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ ready: true, reasons: [] });
    g.setPolicies(null);
    const unready = await g.app.ops.inject({ method: 'GET', url: '/readyz' });
    expect(unready.statusCode).toBe(503);
    expect(unready.json()).toMatchObject({ ready: false });
  });

  it('keeps connections alive longer than the apiserver does (90 s)', () => {
    const g = guard({ policies: TIGHT });
    expect(g.app.webhook.server.keepAliveTimeout).toBeGreaterThan(90_000);
  });
});

describe('what follows an answer', () => {
  it('the audit line and the recording come after the answer, and one that fails is logged, never thrown', async () => {
    const queued: (() => void)[] = [];
    const recorder = {
      record: () => {
        throw new Error('the recording file is gone');
      },
      close: async () => undefined,
    };
    const g = guard({ policies: ROOMY, recorder, afterAnswer: (work) => queued.push(work) });
    expect((await g.review('validate', review('deployment-apply-server-agent-10'))).allowed).toBe(true);
    expect(g.audits()).toEqual([]);
    expect(queued).toHaveLength(1);
    for (const work of queued.splice(0)) work();
    expect(g.audits().map((a) => [a.from, a.to, a.episode])).toEqual([[3, 10, 'recorded']]);
    const failed = g.lines.filter((l) => l.msg === 'could not write the audit line or the recording of a decision');
    expect(failed.map((l) => (l.err as { message?: string } | undefined)?.message)).toEqual(['the recording file is gone']);
    // The guard goes on deciding.
    expect((await g.review('validate', review('deployment-apply-server-agent-10-2'))).allowed).toBe(true);
  });
});
