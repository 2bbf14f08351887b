import { describe, expect, it } from 'vitest';
import { parsePolicyText } from './policy-loader.ts';
import type { PolicySetLoad } from './policy-loader.ts';
import { PolicyStore } from './policy-store.ts';
import type { PolicySet } from './policy-store.ts';

const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2026-01-01T00:01:00Z');

function loadOf(text: string, digest: string): PolicySetLoad {
  const { policies, problems } = parsePolicyText(text, 'p.yaml');
  return { policies, problems, files: ['p.yaml'], digest };
}

const good = (name: string): string =>
  `apiVersion: replica-guard.io/v1alpha1\nkind: ReplicaPolicy\nmetadata: {name: ${name}}\nspec: {mode: enforce, agents: {serviceAccounts: ["agents:*"]}}\n`;
const broken = 'apiVersion: replica-guard.io/v1alpha1\nkind: ReplicaPolicy\nmetadata: {name: x}\nspec: {mode: nope, agents: {users: [bob]}}\n';
const empty: PolicySetLoad = { policies: [], problems: [], files: [], digest: 'empty' };

describe('PolicyStore', () => {
  it('applies a good load and tells the listeners', () => {
    const store = new PolicyStore();
    const seen: PolicySet[] = [];
    store.onChange((set) => seen.push(set));
    const result = store.apply(loadOf(good('a'), 'd1'), T0);
    expect(result).toEqual({ outcome: 'applied', problems: [] });
    expect(store.current()).toMatchObject({ digest: 'd1', loadedAt: T0 });
    expect(store.current()?.policies.map((p) => p.name)).toEqual(['a']);
    expect(seen).toEqual([store.current()]);
  });

  it('keeps the last good set when a reload has errors', () => {
    const store = new PolicyStore();
    store.apply(loadOf(good('a'), 'd1'), T0);
    const result = store.apply(loadOf(broken, 'd2'), T1);
    expect(result.outcome).toBe('rejected');
    expect(result.reason).toMatch(/^1 error in the policy files; keeping the last good set \(1 policy, loaded 2026-01-01T00:00:00.000Z\)/);
    expect(result.problems).toHaveLength(1);
    expect(store.current()?.digest).toBe('d1');
  });

  it('rejects a broken first load and has no set', () => {
    const store = new PolicyStore();
    expect(store.apply(loadOf(broken, 'd1'), T0).reason).toMatch(/no policy set has been loaded yet/);
    expect(store.current()).toBeUndefined();
  });

  it('refuses to drop to zero policies unless allowEmpty', () => {
    const store = new PolicyStore();
    store.apply(loadOf(good('a'), 'd1'), T0);
    const result = store.apply(empty, T1);
    expect(result.outcome).toBe('rejected');
    expect(result.reason).toMatch(/no policies found .*not allowed/);
    expect(store.current()?.digest).toBe('d1');

    const permissive = new PolicyStore({ allowEmpty: true });
    permissive.apply(loadOf(good('a'), 'd1'), T0);
    expect(permissive.apply(empty, T1).outcome).toBe('applied');
    expect(permissive.current()?.policies).toEqual([]);
  });

  it('reports an identical digest as unchanged without telling the listeners', () => {
    const store = new PolicyStore();
    store.apply(loadOf(good('a'), 'd1'), T0);
    let calls = 0;
    store.onChange(() => calls++);
    expect(store.apply(loadOf(good('a'), 'd1'), T1).outcome).toBe('unchanged');
    expect(store.current()?.loadedAt).toBe(T0);
    expect(calls).toBe(0);
  });

  it('accepts a load with warnings and passes them on', () => {
    const store = new PolicyStore();
    const withWarning = good('a').replace('"agents:*"', '"agent-1"');
    const result = store.apply(loadOf(withWarning, 'd1'), T0);
    expect(result.outcome).toBe('applied');
    expect(result.problems).toMatchObject([{ severity: 'warning' }]);
  });

  it('isolates a failing listener and stops calling one that unsubscribed', () => {
    const store = new PolicyStore();
    const boom = new Error('boom');
    store.onChange(() => {
      throw boom;
    });
    const seen: string[] = [];
    const off = store.onChange((set) => seen.push(set.digest));
    expect(store.apply(loadOf(good('a'), 'd1'), T0)).toMatchObject({ outcome: 'applied', listenerErrors: [boom] });
    off();
    store.apply(loadOf(good('b'), 'd2'), T1);
    expect(seen).toEqual(['d1']);
  });
});
