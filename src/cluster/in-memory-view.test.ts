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
  it('marks a UID gone when its workload is deleted or its name comes back with another UID', () => {
    const view = new InMemoryClusterView([]);
    view.observe(ref, snapshot('uid-1'));
    view.observe(ref, snapshot('uid-1', 3));
    expect(view.isGone('uid-1')).toBe(false);
    view.observe(ref, snapshot('uid-2'));
    expect(view.isGone('uid-1')).toBe(true);
    expect(view.workloadByUid('uid-1')).toBeUndefined();
    expect(view.isGone('uid-2')).toBe(false);
    view.observe(ref, null);
    expect(view.isGone('uid-2')).toBe(true);
  });

  it('does not mark a UID gone when a write names no UID (a CREATE is admitted before it has one)', () => {
    const view = new InMemoryClusterView([]);
    view.observe(ref, snapshot('uid-1'));
    view.observe(ref, snapshot(undefined));
    expect(view.isGone('uid-1')).toBe(false);
  });
});
