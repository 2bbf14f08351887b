import { describe, expect, it } from 'vitest';
import { judge } from './judge.ts';
import { resolve } from './resolve.ts';
import type { AgentIdentity, InstanceCount, Limits, NeedFact, Policy, PolicyFacts, WorkloadChange } from './types.ts';

const agent: AgentIdentity = {
  username: 'system:serviceaccount:agents:agent-1',
  serviceAccount: { namespace: 'agents', name: 'agent-1' },
};

function policy(mode: Policy['mode'], limits: Limits, extra: Partial<Policy> = {}): Policy {
  return {
    name: `${mode}-policy`,
    mode,
    agents: { serviceAccounts: ['agents:*'], users: [], groups: [] },
    need: { onUnavailable: 'hold' },
    limits,
    source: { file: 'inline.yaml', document: 1 },
    ...extra,
  };
}

const plain = (steady: number): InstanceCount => ({ steady, extra: { type: 'none' } });

function scale(from: number, to: number, overrides: Partial<WorkloadChange> = {}): WorkloadChange {
  return {
    operation: 'UPDATE',
    ref: { group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'agent-web', uid: 'uid-1' },
    before: plain(from),
    after: plain(to),
    createsWorkload: false,
    clamp: { path: '/spec/replicas', present: true },
    podServiceAccounts: [],
    reservedAnnotationChanges: [],
    unknownFacts: [],
    uncountable: undefined,
    ...overrides,
  };
}

const measured = (value: number): NeedFact => ({ kind: 'measured', value, source: 'static' });
const facts = (need: NeedFact = measured(3), family = { workloads: 0, potential: 0 }): PolicyFacts => ({ need, family });

describe('judge: growth', () => {
  it('allows a scale-down and a no-op under any cap, warning when still over a cap', () => {
    const p = policy('enforce', { perWorkload: 2 });
    const down = judge(scale(10, 5), p, facts(), agent);
    expect(down.growth).toBe(false);
    expect(down.overAllowance).toBe(false);
    expect(down.warnings.join()).toMatch(/still runs 5, above perWorkload 2/);
    const noop = judge(scale(2, 2), p, facts(), agent);
    expect(noop.growth).toBe(false);
    expect(noop.warnings).toEqual([]);
    expect(judge(scale(10, 0), p, facts(), agent).growth).toBe(false);
  });

  it('treats a larger surge as growth even when the steady count holds', () => {
    const change = scale(4, 4, {
      before: { steady: 4, extra: { type: 'surge-fixed', instances: 1 } },
      after: { steady: 4, extra: { type: 'surge-fixed', instances: 6 } },
    });
    const j = judge(change, policy('enforce', { perFamily: 8 }), facts(), agent);
    expect(j.growth).toBe(true);
    expect(j.violations.map((v) => v.limit)).toEqual(['perFamily']);
  });
});

describe('judge: allowance', () => {
  it('is need plus headroom when that is the lowest bound', () => {
    const j = judge(scale(2, 10), policy('enforce', { headroom: 1, perWorkload: 10 }), facts(measured(3)), agent);
    expect(j.allowance).toBe(4);
    expect(j.bounds[0]?.limit).toBe('need');
    expect(j.overAllowance).toBe(true);
  });

  it('is the per-workload cap when lower than the need', () => {
    const j = judge(scale(2, 10), policy('enforce', { perWorkload: 5 }), facts(measured(8)), agent);
    expect(j.allowance).toBe(5);
    expect(j.bounds[0]?.limit).toBe('perWorkload');
  });

  it('bounds one request by the step, CREATE counting from zero', () => {
    const j = judge(scale(2, 10), policy('enforce', { step: 3 }), facts(measured(20)), agent);
    expect(j.allowance).toBe(5);
    expect(j.bounds[0]?.limit).toBe('step');
    const create = scale(0, 6, { operation: 'CREATE', before: null, createsWorkload: true });
    expect(judge(create, policy('enforce', { step: 3 }), facts(measured(20)), agent).allowance).toBe(3);
  });

  it('leaves room in the family for the potential instances of the rest', () => {
    const change = scale(2, 10, {
      before: { steady: 2, extra: { type: 'surge-percent', percent: 25 } },
      after: { steady: 10, extra: { type: 'surge-percent', percent: 25 } },
    });
    // 20 - 12 held elsewhere = 8 potential: steady 6 gives 6 + ceil(1.5) = 8.
    const j = judge(change, policy('enforce', { perFamily: 20 }), facts(measured(50), { workloads: 1, potential: 12 }), agent);
    expect(j.allowance).toBe(6);
    expect(j.bounds[0]?.limit).toBe('perFamily');
  });

  it('judges by caps alone when the kind has no load signal', () => {
    const j = judge(scale(1, 4), policy('enforce', { perWorkload: 6 }), facts({ kind: 'unmeasured' }), agent);
    expect(j.needUsed).toBeNull();
    expect(j.allowance).toBe(6);
    expect(j.overAllowance).toBe(false);
  });

  it('has no allowance when nothing bounds the count', () => {
    const j = judge(scale(1, 400), policy('enforce', {}), facts({ kind: 'unmeasured' }), agent);
    expect(j.allowance).toBeNull();
    expect(j.overAllowance).toBe(false);
  });

  it('denies a new workload past workloadsPerFamily, whatever its size', () => {
    const create = scale(0, 1, { operation: 'CREATE', before: null, createsWorkload: true });
    const j = judge(create, policy('enforce', { workloadsPerFamily: 2 }), facts(measured(3), { workloads: 2, potential: 4 }), agent);
    expect(j.violations.map((v) => v.limit)).toEqual(['workloadsPerFamily']);
  });

  it('denies a clone of one instance that need 0 plus headroom would fit, unless clones are allowed', () => {
    const create = scale(0, 1, { operation: 'CREATE', before: null, createsWorkload: true, ref: { group: '', kind: 'Pod', namespace: 'agents', name: 'copy-1' } });
    const cloneFacts: PolicyFacts = { ...facts(measured(0)), clonedMember: 'Deployment agents/agent-web' };
    const forbidden = judge(create, policy('enforce', { headroom: 1, perFamily: 8 }), cloneFacts, agent);
    expect(forbidden.overAllowance).toBe(false);
    expect(forbidden.violations).toEqual([
      expect.objectContaining({ limit: 'clones', message: expect.stringContaining('clones Deployment agents/agent-web') }),
    ]);
    expect(resolve(create, [forbidden]).type).toBe('deny');
    const allowed = judge(create, policy('enforce', { headroom: 1 }, { clones: { allowed: true, ignoreImages: [] } }), cloneFacts, agent);
    expect(allowed.violations).toEqual([]);
    // Not a clone: the same request fits need 0 + headroom 1.
    expect(judge(create, policy('enforce', { headroom: 1 }), facts(measured(0)), agent).violations).toEqual([]);
  });

  it('counts a CronJob that allows overlapping runs by the policy overlap', () => {
    const change = scale(0, 2, {
      operation: 'CREATE',
      before: null,
      createsWorkload: true,
      after: { steady: 2, extra: { type: 'cronjob-allow' } },
    });
    const p = policy('enforce', { perFamily: 5, cronJobOverlap: 3 });
    const j = judge(change, p, facts(measured(5)), agent);
    // potential 2 × 3 = 6 > 5: the highest steady that fits is 1 (1 × 3 = 3).
    expect(j.allowance).toBe(1);
    expect(j.overAllowance).toBe(true);
  });
});

describe('judge: missing facts', () => {
  const unknown = scale(3, 6, { unknownFacts: ['the Deployment agents/agent-web has not been seen'] });

  it('holds the need at the current count with onUnavailable hold', () => {
    const j = judge(unknown, policy('enforce', { headroom: 1 }), facts(), agent);
    expect(j.fallback).toBe(true);
    expect(j.needUsed).toBe(3);
    expect(j.allowance).toBe(4);
  });

  it('judges by caps alone with onUnavailable caps', () => {
    const p = policy('enforce', { perWorkload: 8 }, { need: { onUnavailable: 'caps' } });
    const j = judge(unknown, p, facts(), agent);
    expect(j.needUsed).toBeNull();
    expect(j.allowance).toBe(8);
    expect(j.overAllowance).toBe(false);
  });

  it('denies with onUnavailable deny', () => {
    const p = policy('enforce', {}, { need: { onUnavailable: 'deny' } });
    const j = judge(unknown, p, facts(), agent);
    expect(j.violations.map((v) => v.limit)).toEqual(['onUnavailable']);
    expect(j.violations[0]?.message).toMatch(/has not been seen/);
  });

  it('treats an unavailable need like a missing fact', () => {
    const j = judge(scale(3, 6), policy('enforce', {}), facts({ kind: 'unavailable', reason: 'source down' }), agent);
    expect(j.fallback).toBe(true);
    expect(j.needUsed).toBe(3);
  });

  it('never lets an uncountable write through', () => {
    const change = scale(0, 0, { operation: 'CREATE', before: null, after: null, createsWorkload: true, uncountable: 'nodes unknown' });
    const j = judge(change, policy('enforce', { perWorkload: 100 }), facts(), agent);
    expect(j.violations.map((v) => v.limit)).toEqual(['onUnavailable']);
  });
});

describe('judge: identity and reserved annotations', () => {
  const withSa = (name: string) =>
    scale(1, 1, { podServiceAccounts: [{ namespace: 'agents', name, field: 'spec.template.spec' }] });

  it("allows the agent's own service account by default and nothing else", () => {
    const p = policy('enforce', {});
    expect(judge(withSa('agent-1'), p, facts(), agent).violations).toEqual([]);
    const other = judge(withSa('default'), p, facts(), agent);
    expect(other.violations.map((v) => v.limit)).toEqual(['podServiceAccounts']);
    expect(other.violations[0]?.field).toBe('spec.template.spec.serviceAccountName');
  });

  it('accepts listed names and namespace:name globs', () => {
    const p = policy('enforce', {}, { podServiceAccounts: ['{self}', 'batch-runner', 'shared:*'] });
    expect(judge(withSa('batch-runner'), p, facts(), agent).violations).toEqual([]);
    const shared = scale(1, 1, { podServiceAccounts: [{ namespace: 'shared', name: 'x', field: 'spec' }] });
    expect(judge(shared, p, facts(), agent).violations).toEqual([]);
    expect(judge(withSa('root'), p, facts(), agent).violations).toHaveLength(1);
  });

  it('gives a user agent `default` by default', () => {
    const user: AgentIdentity = { username: 'alice' };
    expect(judge(withSa('default'), policy('enforce', {}), facts(), user).violations).toEqual([]);
  });

  it('refuses replica-guard.io keys other than the justification', () => {
    const j = judge(scale(1, 1, { reservedAnnotationChanges: ['replica-guard.io/freeze'] }), policy('enforce', {}), facts(), agent);
    expect(j.violations.map((v) => v.limit)).toEqual(['reservedAnnotations']);
  });
});

describe('resolve: modes', () => {
  const change = scale(2, 10);
  const judged = (p: Policy, need = 3) => judge(change, p, facts(measured(need)), agent);

  it('enforce denies growth past the allowance', () => {
    const r = resolve(change, [judged(policy('enforce', { headroom: 1 }))]);
    expect(r.type).toBe('deny');
    if (r.type === 'deny') expect(r.violations[0]?.message).toMatch(/asked for 10, policy enforce-policy allows at most 4/);
  });

  it('clamp lowers to the allowance', () => {
    const r = resolve(change, [judged(policy('clamp', { headroom: 1 }))]);
    expect(r).toMatchObject({ type: 'clamp', to: 4 });
  });

  it('clamp denies what cannot be clamped', () => {
    const pod = scale(0, 1, { operation: 'CREATE', before: null, createsWorkload: true, clamp: null });
    const r = resolve(pod, [judge(pod, policy('clamp', { perWorkload: 0 }), facts(), agent)]);
    expect(r.type).toBe('deny');
    if (r.type === 'deny') expect(r.violations[0]?.message).toMatch(/cannot be clamped/);
  });

  it('clamp never scales below what already runs: it denies instead', () => {
    const over = scale(12, 15);
    const r = resolve(over, [judge(over, policy('clamp', { perWorkload: 10 }), facts(measured(20)), agent)]);
    expect(r.type).toBe('deny');
  });

  it('audit allows with a warning naming the policy', () => {
    const r = resolve(change, [judged(policy('audit', { headroom: 1 }))]);
    expect(r.type).toBe('allow');
    expect(r.warnings.join()).toMatch(/audit: policy audit-policy would deny/);
  });

  it('an enforce denial wins over a clamp', () => {
    const r = resolve(change, [judged(policy('clamp', { headroom: 0 })), judged(policy('enforce', { perWorkload: 8 }))]);
    expect(r).toMatchObject({ type: 'deny' });
    if (r.type === 'deny') expect(r.judgement.policy.mode).toBe('enforce');
  });

  it('the lowest allowance of the clamp policies applies when no enforce policy denies', () => {
    const a = { ...policy('clamp', { perWorkload: 7 }), name: 'a' };
    const b = { ...policy('clamp', { perWorkload: 5 }), name: 'b' };
    const e = policy('enforce', { perWorkload: 10 });
    const r = resolve(change, [judged(a, 50), judged(b, 50), judged(e, 50)]);
    expect(r).toMatchObject({ type: 'clamp', to: 5 });
    if (r.type === 'clamp') expect(r.judgement.policy.name).toBe('b');
  });

  it('audit policies never change the outcome', () => {
    const r = resolve(change, [judged(policy('audit', { perWorkload: 1 })), judged(policy('enforce', { perWorkload: 20 }), 20)]);
    expect(r.type).toBe('allow');
  });
});

describe('judge: rate and survival pressure', () => {
  it('bounds growth by what the rate window has left, in potential instances', () => {
    const p = policy('enforce', { rate: { instances: 4, perMs: 300_000 } });
    const j = judge(scale(2, 10), p, { ...facts(measured(50)), rateUsed: () => 1 }, agent);
    expect(j.allowance).toBe(5);
    expect(j.bounds[0]?.limit).toBe('rate');
    expect(j.bounds[0]?.detail).toBe('rate 4 instances per 5m, 1 used');
    const spent = judge(scale(2, 3), p, { ...facts(measured(50)), rateUsed: () => 4 }, agent);
    expect(spent.allowance).toBe(2);
    expect(spent.overAllowance).toBe(true);
  });

  it('counts surge against the rate: 1 → 2 → 4 → 8 is stopped', () => {
    const change = scale(4, 8, {
      before: { steady: 4, extra: { type: 'surge-fixed', instances: 1 } },
      after: { steady: 8, extra: { type: 'surge-fixed', instances: 1 } },
    });
    const p = policy('enforce', { rate: { instances: 4, perMs: 300_000 } });
    // 3 of 4 used: potential may go from 5 to 6, so steady 5.
    expect(judge(change, p, { ...facts(measured(50)), rateUsed: () => 3 }, agent).allowance).toBe(5);
  });

  it('follows onUnavailable when the rate used is unknown', () => {
    const p = policy('enforce', { rate: { instances: 4, perMs: 300_000 } }, { need: { onUnavailable: 'deny' } });
    const j = judge(scale(2, 3), p, facts(measured(50)), agent);
    expect(j.violations.map((v) => v.limit)).toEqual(['onUnavailable']);
  });

  it('applies the tighter of both limit sets under pressure, and only then', () => {
    const p = policy(
      'enforce',
      { perWorkload: 10, step: 3 },
      { underPressure: { windowMs: 600_000, limits: { step: 0, workloadsPerFamily: 1 } } },
    );
    const calm = judge(scale(2, 5), p, facts(measured(50)), agent);
    expect(calm.overAllowance).toBe(false);
    const pressed = judge(scale(2, 5), p, { ...facts(measured(50)), underPressure: true }, agent);
    expect(pressed.allowance).toBe(2);
    expect(pressed.bounds[0]?.limit).toBe('step');
    const create = scale(0, 1, { operation: 'CREATE', before: null, createsWorkload: true });
    const denied = judge(create, p, { ...facts(measured(50), { workloads: 1, potential: 2 }), underPressure: true }, agent);
    expect(denied.violations.map((v) => v.limit)).toEqual(['workloadsPerFamily']);
    // A field the pressure set leaves out keeps its usual limit.
    expect(judge(scale(2, 12), p, { ...facts(measured(50)), underPressure: true }, agent).allowance).toBe(2);
  });
});
