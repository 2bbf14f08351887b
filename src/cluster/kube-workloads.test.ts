import { describe, expect, it } from 'vitest';
import type { WorkloadSnapshot } from '../core/types.ts';
import { ViewWorkloads } from './kube-workloads.ts';

const snap = (name: string, uid: string, controllerUid?: string): WorkloadSnapshot => ({
  ref: { group: 'apps', kind: 'ReplicaSet', namespace: 'a', name, uid },
  count: { steady: 1, extra: { type: 'none' } },
  serviceAccounts: ['agent'],
  fingerprints: [{ key: 'fp', image: 'img' }],
  ...(controllerUid ? { controllerUid } : {}),
});

describe('ViewWorkloads', () => {
  it('finds every workload by key and UID, but walks only top owners for families', () => {
    const w = new ViewWorkloads();
    w.set(snap('top', 'u1'));
    w.set(snap('owned', 'u2', 'd1'));
    expect(w.size).toBe(2);
    expect(w.get('apps', 'ReplicaSet', 'a', 'owned')?.ref.uid).toBe('u2');
    expect(w.byUid('u2')?.ref.name).toBe('owned');
    expect([...w.runningAs('agent')].map((s) => s.ref.name)).toEqual(['top']);
    expect([...w.withFingerprint('fp')].map((s) => s.ref.name)).toEqual(['top']);
  });

  it('moves a workload between the stores when it is adopted or orphaned', () => {
    const w = new ViewWorkloads();
    w.set(snap('rs', 'u1'));
    w.set(snap('rs', 'u1', 'd1'));
    expect([...w.runningAs('agent')]).toEqual([]);
    expect(w.byUid('u1')?.controllerUid).toBe('d1');
    w.set(snap('rs', 'u1'));
    expect([...w.runningAs('agent')].map((s) => s.ref.name)).toEqual(['rs']);
    w.delete(snap('rs', 'u1').ref);
    expect(w.size).toBe(0);
    expect(w.byUid('u1')).toBeUndefined();
  });

  it('finds the workloads a controller owns, following adoption, orphaning and deletion', () => {
    const w = new ViewWorkloads();
    w.set(snap('rs-1', 'u1', 'd1'));
    w.set(snap('rs-2', 'u2', 'd1'));
    w.set(snap('rs-3', 'u3', 'd2'));
    expect([...w.ownedBy('d1')].map((s) => s.ref.name)).toEqual(['rs-1', 'rs-2']);
    w.set(snap('rs-2', 'u2', 'd2'));
    expect([...w.ownedBy('d1')].map((s) => s.ref.name)).toEqual(['rs-1']);
    expect([...w.ownedBy('d2')].map((s) => s.ref.name)).toEqual(['rs-3', 'rs-2']);
    w.set(snap('rs-1', 'u1'));
    w.delete(snap('rs-3', 'u3').ref);
    expect([...w.ownedBy('d1')]).toEqual([]);
    expect([...w.ownedBy('d2')].map((s) => s.ref.name)).toEqual(['rs-2']);
  });
});
