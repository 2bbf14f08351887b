import { describe, expect, it } from 'vitest';
import { webhookRules, WEBHOOK_RULES } from './webhook-rules.ts';

const resourcesOf = (group: string, rules = WEBHOOK_RULES) => rules.find((r) => r.apiGroups.includes(group))?.resources ?? [];
const workloadRules = (rules = WEBHOOK_RULES) => rules.filter((r) => r.operations.includes('CREATE'));

describe('webhook rules', () => {
  it('cover every channel for adding instances of the built-in kinds', () => {
    expect(resourcesOf('apps')).toEqual([
      'daemonsets',
      'deployments',
      'deployments/scale',
      'replicasets',
      'replicasets/scale',
      'statefulsets',
      'statefulsets/scale',
    ]);
    expect(resourcesOf('')).toEqual(['pods', 'replicationcontrollers', 'replicationcontrollers/scale']);
    expect(resourcesOf('batch')).toEqual(['cronjobs', 'jobs']);
    expect(resourcesOf('autoscaling')).toEqual(['horizontalpodautoscalers']);
    for (const rule of workloadRules()) {
      expect(rule.operations).toEqual(['CREATE', 'UPDATE', 'DELETE']);
      expect(rule.apiVersions).toEqual(['*']);
    }
  });

  it('add configured scale resources with their scale subresource', () => {
    const rules = webhookRules([{ group: 'example.com', resource: 'agentpools', kind: 'AgentPool', replicasPath: 'spec.size' }]);
    expect(resourcesOf('example.com', rules)).toEqual(['agentpools', 'agentpools/scale']);
  });
});

describe('webhook rules of the safety switches', () => {
  it('see updates and deletions of ServiceAccounts and (cluster-scoped) Namespaces, never their creation', () => {
    const switchRules = WEBHOOK_RULES.filter((r) => !r.operations.includes('CREATE'));
    expect(switchRules).toEqual([
      { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE', 'DELETE'], resources: ['serviceaccounts'], scope: 'Namespaced' },
      { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE', 'DELETE'], resources: ['namespaces'], scope: 'Cluster' },
    ]);
    // No workload rule claims them.
    expect(workloadRules().flatMap((r) => r.resources)).not.toContain('serviceaccounts');
  });
});

describe('webhook rules for custom resources counted by paths', () => {
  it('add the resource itself', () => {
    const rules = webhookRules([], [{ group: 'ray.io', resource: 'rayclusters' }]);
    expect(rules.find((r) => r.apiGroups.includes('ray.io'))?.resources).toEqual(['rayclusters']);
  });
});
