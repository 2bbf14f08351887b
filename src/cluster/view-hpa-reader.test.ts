import { describe, expect, it } from 'vitest';
import type { AgentIdentity, WorkloadRef } from '../core/types.ts';
import type { AccessSubject, ResourceAccess } from './access-review.ts';
import type { ViewAutoscaler } from './kube-view.ts';
import { ViewHpaReader } from './view-hpa-reader.ts';

const WEB: WorkloadRef = { group: 'apps', kind: 'Deployment', namespace: 'shop', name: 'web' };
const HPA: ViewAutoscaler = { namespace: 'shop', name: 'web', uid: 'hpa-uid', desiredReplicas: 7 };
const AGENT: AgentIdentity = {
  username: 'system:serviceaccount:agents:agent-1',
  serviceAccount: { namespace: 'agents', name: 'agent-1' },
  groups: ['system:serviceaccounts:agents'],
};
const NEVER = new AbortController().signal;

type Answer = boolean | undefined;

function setup(options: {
  hpa?: ViewAutoscaler | null | undefined;
  access?: (access: ResourceAccess) => Answer | Promise<Answer>;
  provenance?: () => Answer | Promise<Answer>;
}) {
  const asked: { subject: AccessSubject; access: ResourceAccess }[] = [];
  const provenanceAsked: string[] = [];
  const reader = new ViewHpaReader({
    view: { autoscalerOf: () => ('hpa' in options ? options.hpa : HPA) },
    access: {
      async allowed(subject, access) {
        asked.push({ subject, access });
        return (options.access ?? (() => false))(access);
      },
    },
    provenance: async (_agent, uid) => {
      provenanceAsked.push(uid);
      return (options.provenance ?? (() => false))();
    },
  });
  return { reader, asked, provenanceAsked };
}

describe('ViewHpaReader', () => {
  it('passes the view’s "no HPA" and "not known" through without asking anything', async () => {
    for (const hpa of [null, undefined]) {
      const { reader, asked, provenanceAsked } = setup({ hpa });
      expect(await reader.hpaFor(WEB, AGENT, NEVER)).toBe(hpa);
      expect(asked).toHaveLength(0);
      expect(provenanceAsked).toHaveLength(0);
    }
  });

  it('says the family cannot write the HPA when no review allows it and it is not in the provenance', async () => {
    const { reader, asked, provenanceAsked } = setup({});
    expect(await reader.hpaFor(WEB, AGENT, NEVER)).toEqual({ namespace: 'shop', name: 'web', desiredReplicas: 7, familyCanWrite: false });
    expect(provenanceAsked).toEqual(['hpa-uid']);
    expect(asked.map((a) => `${a.access.verb} ${a.access.subresource ?? ''}`)).toEqual(['update ', 'patch ', 'update status', 'patch status']);
    expect(asked[0]).toEqual({
      subject: { user: AGENT.username, groups: AGENT.groups },
      access: { verb: 'update', group: 'autoscaling', resource: 'horizontalpodautoscalers', namespace: 'shop', name: 'web' },
    });
  });

  it('says it can when any one review allows, or the HPA is in the provenance', async () => {
    const byStatus = setup({ access: (a) => a.subresource === 'status' && a.verb === 'patch' });
    expect(await byStatus.reader.hpaFor(WEB, AGENT, NEVER)).toMatchObject({ familyCanWrite: true });
    const byProvenance = setup({ provenance: () => true });
    expect(await byProvenance.reader.hpaFor(WEB, AGENT, NEVER)).toMatchObject({ familyCanWrite: true });
    // A yes wins over a lookup that failed.
    const mixed = setup({ access: (a) => (a.verb === 'patch' ? true : undefined), provenance: () => undefined });
    expect(await mixed.reader.hpaFor(WEB, AGENT, NEVER)).toMatchObject({ familyCanWrite: true });
  });

  it('does not know when a review or the provenance cannot be read, without an agent, or for a user without groups', async () => {
    const failedReview = setup({ access: (a) => (a.verb === 'update' && !a.subresource ? undefined : false) });
    expect(await failedReview.reader.hpaFor(WEB, AGENT, NEVER)).toMatchObject({ familyCanWrite: undefined });
    const failedLedger = setup({ provenance: () => Promise.reject(new Error('ledger unreachable')) });
    expect(await failedLedger.reader.hpaFor(WEB, AGENT, NEVER)).toMatchObject({ familyCanWrite: undefined });
    const noUid = setup({ hpa: { ...HPA, uid: undefined } });
    expect(await noUid.reader.hpaFor(WEB, AGENT, NEVER)).toMatchObject({ familyCanWrite: undefined });
    const anonymous = setup({});
    expect(await anonymous.reader.hpaFor(WEB, undefined, NEVER)).toMatchObject({ familyCanWrite: undefined, desiredReplicas: 7 });
    expect(anonymous.asked).toHaveLength(0);
    const user = setup({});
    expect(await user.reader.hpaFor(WEB, { username: 'bot' }, NEVER)).toMatchObject({ familyCanWrite: undefined });
    expect(user.asked).toHaveLength(0);
  });

  it("does not know when the provenance is still being read at the caller's deadline", async () => {
    const { reader } = setup({ provenance: () => new Promise<Answer>(() => undefined) });
    expect(await reader.hpaFor(WEB, AGENT, AbortSignal.timeout(30))).toMatchObject({ familyCanWrite: undefined });
  });
});
