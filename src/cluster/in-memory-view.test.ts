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
});
