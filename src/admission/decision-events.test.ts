import { describe, expect, it } from 'vitest';
import { review, scaleReview } from '../../test/helpers/fixtures.ts';
import type { AgentIdentity } from '../core/types.ts';
import { allowed, denied, patched, withWarnings } from './decision.ts';
import { decisionEvent } from './decision-events.ts';
import { parseAdmissionReview } from './review.ts';

const agent: AgentIdentity = { username: 'system:serviceaccount:agents:agent-1', serviceAccount: { namespace: 'agents', name: 'agent-1' } };
const no = denied('asked for 10, policy cap allows at most 4');

describe('decisionEvent', () => {
  it("puts a denied CREATE on the agent's ServiceAccount, and a denied Scale on its parent workload", () => {
    const create = decisionEvent('validate', parseAdmissionReview(review('deployment-create-agent')), agent, no);
    expect(create).toEqual({
      agent: agent.username,
      object: { apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'agents', name: 'agent-1' },
      reason: 'GrowthDenied',
      message: `${agent.username}: asked for 10, policy cap allows at most 4`,
    });
    const scale = decisionEvent('validate', parseAdmissionReview(scaleReview('web', 3, 10, 'uid-web')), agent, no);
    expect(scale?.object).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'agents', name: 'web', uid: 'uid-web' });
  });

  it('records a clamp on the object, and nothing for allowed requests, dry runs or users without an account', () => {
    const update = parseAdmissionReview(review('deployment-replace-agent-10'));
    const clamp = decisionEvent('mutate', update, agent, withWarnings(patched([]), ['replica-guard lowered spec.replicas from 10 to 4']));
    expect(clamp).toMatchObject({ reason: 'GrowthClamped', object: { kind: 'Deployment', name: 'agent-web' } });
    expect(clamp?.message).toContain('lowered spec.replicas from 10 to 4');
    expect(decisionEvent('validate', update, agent, allowed())).toBeUndefined();
    // The mutating webhook never denies; the validating one's denial is the one recorded.
    expect(decisionEvent('mutate', update, agent, no)).toBeUndefined();
    expect(decisionEvent('validate', parseAdmissionReview(review('deployment-replace-agent-10', { dryRun: true })), agent, no)).toBeUndefined();
    expect(decisionEvent('validate', parseAdmissionReview(review('deployment-create-agent')), { username: 'bob' }, no)).toBeUndefined();
  });
});
