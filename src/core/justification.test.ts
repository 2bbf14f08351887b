import { describe, expect, it } from 'vitest';
import { justificationFact, justificationHash, justificationViolation } from './justification.ts';
import type { Policy, WorkloadChange } from './types.ts';

const change = (text: string | undefined, changed: boolean, from: 'object' | 'parent' = 'object'): WorkloadChange => ({
  operation: 'UPDATE',
  ref: { group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'web' },
  before: { steady: 2, extra: { type: 'none' } },
  after: { steady: 5, extra: { type: 'none' } },
  createsWorkload: false,
  clamp: { path: '/spec/replicas', present: true },
  podServiceAccounts: [],
  reservedAnnotationChanges: [],
  unknownFacts: [],
  uncountable: undefined,
  justification: { text, changed, from },
});

const policy = (required: 'beyondNeed' | 'always'): Policy => ({
  name: 'why',
  mode: 'enforce',
  agents: { serviceAccounts: ['agents:*'], users: [], groups: [] },
  need: { onUnavailable: 'hold' },
  limits: {},
  justification: { required },
  source: { file: 'inline.yaml', document: 0 },
});

describe('justificationFact', () => {
  it('is fresh when changed in the request or different from the last recorded one, never when blank', () => {
    const last = justificationHash('queue depth tripled');
    expect(justificationFact(change('queue depth tripled', true), last)?.fresh).toBe(true);
    expect(justificationFact(change('queue depth tripled', false), last)?.fresh).toBe(false);
    expect(justificationFact(change('  queue depth tripled ', false), last)?.fresh).toBe(false);
    expect(justificationFact(change('latency over 2 s', false), last)?.fresh).toBe(true);
    expect(justificationFact(change('anything', false), undefined)?.fresh).toBe(true);
    expect(justificationFact(change('   ', true), undefined)).toEqual({ text: undefined, fresh: false, from: 'object' });
  });
});

describe('justificationViolation', () => {
  const stale = { text: 'x', fresh: false, from: 'object' } as const;
  it('beyondNeed asks only past the need, or when the need is unknown', () => {
    expect(justificationViolation(policy('beyondNeed'), change('x', false), { to: 3, needUsed: 3 }, stale)).toBeUndefined();
    expect(justificationViolation(policy('beyondNeed'), change('x', false), { to: 4, needUsed: 3 }, stale)?.message).toContain('growth beyond the need (3)');
    expect(justificationViolation(policy('beyondNeed'), change('x', false), { to: 4, needUsed: null }, stale)?.message).toContain('while the need is unknown');
  });

  it('always asks; a fresh one satisfies it; the message says what to add and where', () => {
    const missing = justificationViolation(policy('always'), change(undefined, false), { to: 1, needUsed: 3 }, { text: undefined, fresh: false, from: 'object' });
    expect(missing).toMatchObject({ limit: 'justification', field: 'metadata.annotations[replica-guard.io/justification]' });
    expect(missing?.message).toContain('none is set; add "replica-guard.io/justification": "<why 1 instances are needed now>" in this Deployment');
    const parent = justificationViolation(policy('always'), change('x', false, 'parent'), { to: 5, needUsed: 3 }, { ...stale, from: 'parent' });
    expect(parent?.message).toContain('already given for the last recorded growth');
    expect(parent?.message).toContain("on the Deployment web (a Scale is judged by its parent's annotation)");
    expect(justificationViolation(policy('always'), change('x', true), { to: 5, needUsed: 3 }, { ...stale, fresh: true })).toBeUndefined();
  });
});
