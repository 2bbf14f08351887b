import { describe, expect, it } from 'vitest';
import { podFingerprints } from '../core/fingerprint.ts';
import type { AgentIdentity, WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import { FamilyAggregates } from './family-aggregates.ts';
import { WorkloadIndex } from './workload-index.ts';

const agent: AgentIdentity = {
  username: 'system:serviceaccount:agents:agent-1',
  serviceAccount: { namespace: 'agents', name: 'agent-1' },
};
const nothing: WorkloadRef = { group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'new' };

function snapshot(
  name: string,
  opts: { namespace?: string; sa?: string; image?: string; steady?: number; owner?: string; uid?: string; args?: string[] } = {},
): WorkloadSnapshot {
  const sa = opts.sa ?? 'agent-1';
  return {
    ref: { group: 'apps', kind: 'Deployment', namespace: opts.namespace ?? 'agents', name, uid: opts.uid ?? `uid-${name}` },
    count: { steady: opts.steady ?? 2, extra: { type: 'none' } },
    serviceAccounts: [sa],
    fingerprints: podFingerprints(sa, [{ image: opts.image ?? 'registry.example/agent:1.0', args: opts.args ?? ['serve'] }]),
    controllerUid: opts.owner,
  };
}

function hpa(target: string, max: number): WorkloadSnapshot {
  return {
    ref: { group: 'autoscaling', kind: 'HorizontalPodAutoscaler', namespace: 'agents', name: `${target}-hpa`, uid: `uid-${target}-hpa` },
    count: { steady: max, extra: { type: 'none' } },
    serviceAccounts: [],
    fingerprints: [],
    scaleTarget: { group: 'apps', kind: 'Deployment', name: target },
  };
}

/** An index that counts the lookups that walk a group of workloads. */
class CountingIndex extends WorkloadIndex {
  walks = 0;
  override *runningAs(sa: string): Iterable<WorkloadSnapshot> {
    this.walks++;
    yield* super.runningAs(sa);
  }
  override *withFingerprint(key: string): Iterable<WorkloadSnapshot> {
    this.walks++;
    yield* super.withFingerprint(key);
  }
}

const names = (members: Iterable<WorkloadSnapshot>) => [...members].map((m) => m.ref.name).sort();

describe('FamilyAggregates', () => {
  it('keeps the totals as workloads arrive, change and go', () => {
    const index = new WorkloadIndex();
    const families = new FamilyAggregates(index);
    index.set(snapshot('web', { steady: 2 }));
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing })).toMatchObject({ workloads: 1, potential: 2 });
    index.set(snapshot('api', { steady: 3, args: ['api'] }));
    index.set(snapshot('web', { steady: 5 }));
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing })).toMatchObject({ workloads: 2, potential: 8 });
    index.delete(snapshot('web').ref);
    const family = families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing });
    expect(family).toMatchObject({ workloads: 1, potential: 3 });
    expect(names(family.members())).toEqual(['api']);
  });

  it('follows provenance: a workload run as another account counts, and so do its clones, until it leaves', () => {
    const index = new WorkloadIndex();
    const families = new FamilyAggregates(index);
    index.set(snapshot('mine', { sa: 'worker', namespace: 'elsewhere' }));
    index.set(snapshot('clone', { sa: 'worker', namespace: 'other', image: 'registry.example/agent:9' }));
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing }).workloads).toBe(0);
    const provenance = [{ uid: 'uid-mine' }];
    expect(names(families.family({ agent, provenance: provenance, ignoreImages: [], excluding: nothing }).members())).toEqual(['clone', 'mine']);
    // A clone made later is found without asking again from scratch.
    index.set(snapshot('later', { sa: 'worker', namespace: 'third', steady: 4 }));
    expect(families.family({ agent, provenance: provenance, ignoreImages: [], excluding: nothing })).toMatchObject({ workloads: 3, potential: 8 });
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing })).toMatchObject({ workloads: 0, potential: 0 });
  });

  it('never expands an ignored image', () => {
    const index = new WorkloadIndex();
    const families = new FamilyAggregates(index);
    index.set(snapshot('mine', { sa: 'worker', image: 'docker.io/library/python:3.12' }));
    index.set(snapshot('lookalike', { sa: 'worker', namespace: 'x', image: 'docker.io/library/python:3.11' }));
    const provenance = [{ uid: 'uid-mine' }];
    expect(families.family({ agent, provenance: provenance, ignoreImages: ['docker.io/library/*'], excluding: nothing }).workloads).toBe(1);
    expect(families.family({ agent, provenance: provenance, ignoreImages: [], excluding: nothing }).workloads).toBe(2);
  });

  it("counts at the top owner only, and raises an HPA's target while the HPA is there", () => {
    const index = new WorkloadIndex();
    const families = new FamilyAggregates(index);
    index.set(snapshot('web', { steady: 2 }));
    index.set(snapshot('web-abc', { steady: 2, owner: 'uid-web' }));
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing })).toMatchObject({ workloads: 1, potential: 2 });
    index.set(hpa('web', 8));
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing })).toMatchObject({ workloads: 1, potential: 8 });
    index.set(hpa('web', 5));
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing }).potential).toBe(5);
    index.delete(hpa('web', 5).ref);
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing }).potential).toBe(2);
  });

  it('leaves out the judged workload, and names a member a new template clones', () => {
    const index = new WorkloadIndex();
    const families = new FamilyAggregates(index);
    index.set(snapshot('web', { steady: 2 }));
    index.set(snapshot('api', { steady: 3, args: ['api'] }));
    const web = { ...nothing, name: 'web' };
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: web })).toMatchObject({ workloads: 1, potential: 3 });
    const same = podFingerprints('agent-1', [{ image: 'registry.example/agent:2.0', args: ['serve'] }]);
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing }).clonedMember(same)).toMatchObject({ name: 'web' });
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: web }).clonedMember(same)).toBeUndefined();
    expect(families.family({ agent, provenance: [], ignoreImages: ['registry.example/*'], excluding: nothing }).clonedMember(same)).toBeUndefined();
  });

  it('answers a read without walking the family once it is built', () => {
    const index = new CountingIndex();
    const families = new FamilyAggregates(index);
    for (let i = 0; i < 200; i++) index.set(snapshot(`w-${i}`, { args: [`${i}`] }));
    const provenance = [{ uid: 'uid-w-1' }];
    families.family({ agent, provenance: provenance, ignoreImages: [], excluding: nothing });
    const built = index.walks;
    for (let i = 0; i < 100; i++) expect(families.family({ agent, provenance: provenance, ignoreImages: [], excluding: { ...nothing, name: `w-${i}` } }).workloads).toBe(199);
    expect(index.walks).toBe(built);
  });

  it('drops the least recently asked family past its bound and builds it again when asked', () => {
    const index = new WorkloadIndex();
    const families = new FamilyAggregates(index, { maxFamilies: 1 });
    const other: AgentIdentity = { username: 'system:serviceaccount:agents:agent-2', serviceAccount: { namespace: 'agents', name: 'agent-2' } };
    index.set(snapshot('web'));
    index.set(snapshot('two', { sa: 'agent-2' }));
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing }).workloads).toBe(1);
    expect(families.family({ agent: other, provenance: [], ignoreImages: [], excluding: nothing }).workloads).toBe(1);
    expect(families.size).toBe(1);
    index.set(snapshot('api', { args: ['api'] }));
    expect(families.family({ agent, provenance: [], ignoreImages: [], excluding: nothing }).workloads).toBe(2);
  });
});
