import { describe, expect, it } from 'vitest';
import { type ListedObject, planShutdown } from './shutdown-plan.ts';

const template = (sa: string) => ({ spec: { serviceAccountName: sa, containers: [] } });
const agent = { namespace: 'agents', name: 'agent-1' };

describe('planShutdown', () => {
  it('takes what runs as the agent in its namespace and what it created anywhere, never children or others', () => {
    const objects = new Map<string, ListedObject[]>([
      [
        'deployments',
        [
          { metadata: { namespace: 'agents', name: 'mine', uid: 'u1' }, spec: { replicas: 2, template: template('agent-1') } },
          { metadata: { namespace: 'agents', name: 'theirs', uid: 'u2' }, spec: { replicas: 2, template: template('agent-2') } },
          // Same name of account, another namespace: not the agent.
          { metadata: { namespace: 'other', name: 'lookalike', uid: 'u3' }, spec: { template: template('agent-1') } },
          // Created by the agent (its ledger's provenance), running as another account elsewhere.
          { metadata: { namespace: 'batch', name: 'spawned', uid: 'u4' }, spec: { replicas: 5, template: template('worker') } },
        ],
      ],
      ['replicasets', [{ metadata: { namespace: 'agents', name: 'mine-1', uid: 'r1', ownerReferences: [{ kind: 'Deployment', uid: 'u1', controller: true }] }, spec: { template: template('agent-1') } }]],
      [
        'horizontalpodautoscalers',
        [
          { metadata: { namespace: 'agents', name: 'h1', uid: 'h1', resourceVersion: '9' }, spec: { scaleTargetRef: { kind: 'Deployment', name: 'mine' }, maxReplicas: 4 } },
          { metadata: { namespace: 'agents', name: 'h2', uid: 'h2' }, spec: { scaleTargetRef: { kind: 'Deployment', name: 'theirs' }, maxReplicas: 4 } },
        ],
      ],
    ]);
    const plan = planShutdown({ objects, agent, provenance: new Set(['u4']) });
    expect(plan.map((a) => `${a.type} ${a.kind} ${a.namespace}/${a.name}`)).toEqual([
      'delete-hpa HorizontalPodAutoscaler agents/h1',
      'scale Deployment agents/mine',
      'scale Deployment batch/spawned',
    ]);
    // The HPA is kept as it can be created again: no uid, no resourceVersion.
    expect(plan[0]).toMatchObject({ manifest: { metadata: { name: 'h1', namespace: 'agents' }, spec: { maxReplicas: 4 } } });
    expect(JSON.stringify(plan[0])).not.toContain('resourceVersion');
    expect(plan[1]).toMatchObject({ from: 2 });
  });
});
