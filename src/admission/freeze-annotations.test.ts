import { describe, expect, it } from 'vitest';
import { fixture, type Review } from '../../test/helpers/fixtures.ts';
import { FREEZE_ANNOTATION, freezeAnnotationChange, isSwitchResource, reservedChangesOf } from './freeze-annotations.ts';
import { parseAdmissionReview } from './review.ts';

const request = (name: string, edit?: (r: Review) => void) => {
  const body = fixture(name);
  edit?.(body);
  return parseAdmissionReview(body);
};

describe('freeze annotations', () => {
  it('see the removal of the last annotation (metadata.annotations gone entirely) as a change', () => {
    // Recorded from a real apiserver: kubectl annotate sa agent-1 replica-guard.io/freeze- by the agent.
    const req = request('serviceaccount-annotate-agent');
    expect(isSwitchResource(req)).toBe(true);
    expect(reservedChangesOf(req)).toEqual([FREEZE_ANNOTATION]);
    expect(freezeAnnotationChange(req)).toEqual({ type: 'removed', scope: { type: 'agent', namespace: 'agents', name: 'agent-1' } });
  });

  it('see an overwrite, but not an unrelated edit or the justification', () => {
    const overwrite = request('serviceaccount-annotate-agent', (r) => {
      r.request.object = { metadata: { name: 'agent-1', annotations: { [FREEZE_ANNOTATION]: 'false' } } };
    });
    expect(reservedChangesOf(overwrite)).toEqual([FREEZE_ANNOTATION]);
    const unrelated = request('serviceaccount-annotate-agent', (r) => {
      r.request.object = { metadata: { name: 'agent-1', annotations: { [FREEZE_ANNOTATION]: 'true', note: 'x', 'replica-guard.io/justification': 'y' } } };
    });
    expect(reservedChangesOf(unrelated)).toEqual([]);
    expect(freezeAnnotationChange(unrelated)).toEqual({ type: 'none' });
  });

  it('read an operator freezing a Namespace, with the value as the reason unless it is "true"', () => {
    const req = request('namespace-annotate-admin');
    expect(isSwitchResource(req)).toBe(true);
    expect(freezeAnnotationChange(req)).toEqual({ type: 'set', scope: { type: 'namespace', namespace: 'agents' }, reason: undefined, value: 'true' });
    const withReason = request('namespace-annotate-admin', (r) => {
      (r.request.object?.metadata?.annotations as Record<string, string>)[FREEZE_ANNOTATION] = 'cost spike';
    });
    expect(freezeAnnotationChange(withReason)).toMatchObject({ type: 'set', reason: 'cost spike' });
  });

  it('leave DELETE alone: the freeze lives in the switches, not on the object', () => {
    const req = request('serviceaccount-annotate-agent', (r) => {
      r.request.operation = 'DELETE';
      r.request.object = null;
    });
    expect(reservedChangesOf(req)).toEqual([]);
    expect(freezeAnnotationChange(req)).toEqual({ type: 'none' });
  });

  it('are not looked for in workloads or subresources', () => {
    expect(isSwitchResource(request('deployment-scale-agent-10'))).toBe(false);
    expect(isSwitchResource(request('serviceaccount-annotate-agent', (r) => { r.request.subResource = 'token'; }))).toBe(false);
  });
});
