import { describe, expect, it } from 'vitest';
import { configSchema } from './config.ts';

const mapping = (over: Record<string, unknown> = {}) => ({
  group: 'keda.sh',
  version: 'v1alpha1',
  resource: 'scaledobjects',
  kind: 'ScaledObject',
  countPaths: ['spec.maxReplicaCount'],
  ...over,
});

function problems(customResources: unknown[]): string[] {
  const result = configSchema.safeParse({ view: { customResources } });
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('view.customResources', () => {
  it('accepts distinct custom kinds', () => {
    const config = configSchema.parse({
      view: { customResources: [mapping(), mapping({ group: 'ray.io', resource: 'rayclusters', kind: 'RayCluster', version: 'v1' })] },
    });
    expect(config.view.customResources.map((m) => m.kind)).toEqual(['ScaledObject', 'RayCluster']);
  });

  it('rejects a kind or a resource mapped twice, naming both places', () => {
    expect(problems([mapping(), mapping({ countPaths: ['spec.minReplicaCount'] })])).toEqual([
      'view.customResources.1.kind: keda.sh/ScaledObject is already mapped at customResources.0; map each kind once',
      'view.customResources.1.resource: keda.sh/scaledobjects is already mapped at customResources.0; map each resource once',
    ]);
    expect(problems([mapping(), mapping({ kind: 'ScaledThing' })])).toEqual([
      'view.customResources.1.resource: keda.sh/scaledobjects is already mapped at customResources.0; map each resource once',
    ]);
  });

  it('rejects a mapping of a kind or resource the guard reads itself', () => {
    expect(problems([mapping({ group: 'apps', resource: 'deployments', kind: 'Deployment' })])).toEqual([
      'view.customResources.0.kind: apps/Deployment is read by the guard itself; map only custom resources',
      'view.customResources.0.resource: apps/deployments is read by the guard itself; map only custom resources',
    ]);
    expect(problems([mapping({ group: 'autoscaling', resource: 'hpas', kind: 'HorizontalPodAutoscaler' })])).toEqual([
      'view.customResources.0.kind: autoscaling/HorizontalPodAutoscaler is read by the guard itself; map only custom resources',
    ]);
  });
});

describe('ledger.leases', () => {
  it('defaults to leases of 8 instances written 250 ms behind their answers', () => {
    expect(configSchema.parse({}).ledger.leases).toEqual({ instances: 8, ttl: 30_000, idle: 2_000, writeDelay: 250 });
    expect(configSchema.parse({ ledger: { leases: { writeDelay: '0s' } } }).ledger.leases.writeDelay).toBe(0);
  });

  it('refuses a write delay past 5 s, naming the setting', () => {
    const result = configSchema.safeParse({ ledger: { leases: { writeDelay: '10s' } } });
    expect(result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'ledger.leases.writeDelay: ledger.leases.writeDelay must be at most 5s',
    ]);
  });
});
