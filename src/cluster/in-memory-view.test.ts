import { describe, expect, it } from 'vitest';
import type { WorkloadSnapshot } from '../core/types.ts';
import { InMemoryClusterView } from './in-memory-view.ts';

const ref = { group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'web' };
const snapshot = (uid: string | undefined, steady = 2): WorkloadSnapshot => ({
  ref: { ...ref, uid },
  count: { steady, extra: { type: 'none' } },
  serviceAccounts: ['agent-1'],
  fingerprints: [],
  scaleTarget: undefined,
});

describe('InMemoryClusterView', () => {
  it('never reports a UID gone: a deleted or replaced entry may be a request that did not commit', () => {
    const view = new InMemoryClusterView([]);
    view.observe(ref, snapshot('uid-1'));
    // A CREATE of a name that exists is admitted before the apiserver answers AlreadyExists.
    view.observe(ref, snapshot('uid-2'));
    expect(view.workloadByUid('uid-2')).toBeDefined();
    expect(view.isGone('uid-1')).toBe(false);
    // A DELETE the guard admitted can still be refused by another webhook.
    view.observe(ref, null);
    expect(view.workload('apps', 'Deployment', 'agents', 'web')).toBeUndefined();
    expect(view.isGone('uid-2')).toBe(false);
  });

  it('keeps the maxWorkloads most recently written workloads, out of every index, and says so', () => {
    let evicted = 0;
    const view = new InMemoryClusterView([], { maxWorkloads: 2, onEvict: () => evicted++ });
    const named = (name: string, uid: string): WorkloadSnapshot => ({ ...snapshot(uid), ref: { ...ref, name, uid } });
    view.observe({ ...ref, name: 'a' }, named('a', 'uid-a'));
    view.observe({ ...ref, name: 'b' }, named('b', 'uid-b'));
    // A new write of a makes b the least recently written.
    view.observe({ ...ref, name: 'a' }, named('a', 'uid-a2'));
    view.observe({ ...ref, name: 'c' }, named('c', 'uid-c'));
    expect([view.size, view.evictions, evicted]).toEqual([2, 1, 1]);
    expect(view.workload('apps', 'Deployment', 'agents', 'b')).toBeUndefined();
    expect(view.workloadByUid('uid-b')).toBeUndefined();
    expect([...view.runningAs('agent-1')].map((w) => w.ref.name).sort()).toEqual(['a', 'c']);
    // The agent's family forgets it too.
    const agent = { username: 'system:serviceaccount:agents:agent-1', serviceAccount: { namespace: 'agents', name: 'agent-1' } };
    const family = view.family({ agent, provenance: [{ uid: 'uid-b' }], ignoreImages: [], excluding: { ...ref, name: 'new' } });
    expect([family.workloads, family.potential, [...family.members()].map((w) => w.ref.name).sort()]).toEqual([2, 4, ['a', 'c']]);
    // A deleted workload frees its place without an eviction.
    view.observe({ ...ref, name: 'c' }, null);
    view.observe({ ...ref, name: 'd' }, named('d', 'uid-d'));
    expect([view.size, view.evictions]).toEqual([2, 1]);
  });
});
