import { describe, expect, it } from 'vitest';
import { placeholderNodes } from '../admission/node-eligibility.ts';
import type { AgentIdentity, WorkloadRef } from '../core/types.ts';
import { InMemoryClusterView } from './in-memory-view.ts';

const agent: AgentIdentity = { username: 'system:serviceaccount:agents:agent-1', serviceAccount: { namespace: 'agents', name: 'agent-1' } };
const other: AgentIdentity = { username: 'system:serviceaccount:agents:agent-2', serviceAccount: { namespace: 'agents', name: 'agent-2' } };
const ref = (name: string, kind = 'Deployment', namespace = 'agents'): WorkloadRef => ({ group: 'apps', kind, namespace, name });

describe('InMemoryClusterView', () => {
  it("puts in a family what the agent wrote and what runs as its account, in any namespace", () => {
    const view = new InMemoryClusterView(placeholderNodes(2));
    view.observe(agent, ref('web'), { ref: ref('web'), count: { steady: 4, extra: { type: 'surge-percent', percent: 25 } }, serviceAccounts: ['agent-1'] });
    view.observe(other, ref('clone', 'Deployment', 'agents-b'), { ref: ref('clone', 'Deployment', 'agents-b'), count: { steady: 2, extra: { type: 'none' } }, serviceAccounts: ['agent-1'] });
    view.observe(other, ref('unrelated'), { ref: ref('unrelated'), count: { steady: 9, extra: { type: 'none' } }, serviceAccounts: ['agent-2'] });
    expect(view.family(agent, ref('new'))).toEqual({ workloads: 2, potential: 4 + 1 + 2 });
    expect(view.family(agent, ref('web'))).toEqual({ workloads: 1, potential: 2 });
    expect(view.nodes()).toHaveLength(2);
  });

  it("counts an HPA's target at the HPA's ceiling, once", () => {
    const view = new InMemoryClusterView([]);
    view.observe(agent, ref('web'), { ref: ref('web'), count: { steady: 2, extra: { type: 'none' } }, serviceAccounts: ['agent-1'] });
    const hpa = { group: 'autoscaling', kind: 'HorizontalPodAutoscaler', namespace: 'agents', name: 'web' };
    view.observe(agent, hpa, {
      ref: hpa,
      count: { steady: 6, extra: { type: 'none' } },
      serviceAccounts: [],
      scaleTarget: { group: 'apps', kind: 'Deployment', name: 'web' },
    });
    expect(view.family(agent, ref('x'))).toEqual({ workloads: 1, potential: 6 });
  });

  it('forgets a deleted workload', () => {
    const view = new InMemoryClusterView([]);
    view.observe(agent, ref('web'), { ref: ref('web'), count: { steady: 2, extra: { type: 'none' } }, serviceAccounts: [] });
    view.observe(agent, ref('web'), null);
    expect(view.workload('apps', 'Deployment', 'agents', 'web')).toBeUndefined();
    expect(view.family(agent, ref('x'))).toEqual({ workloads: 0, potential: 0 });
  });
});
