import { describe, expect, it } from 'vitest';
import { WorkloadIndex } from '../cluster/workload-index.ts';
import { clonedMember, describeWorkload, type FamilyLookups, familyOf } from './family.ts';
import { podFingerprints } from './fingerprint.ts';
import type { AgentIdentity, WorkloadRef, WorkloadSnapshot } from './types.ts';

const agent: AgentIdentity = {
  username: 'system:serviceaccount:agents:agent-1',
  serviceAccount: { namespace: 'agents', name: 'agent-1' },
};

function snapshot(
  name: string,
  opts: { kind?: string; namespace?: string; sa?: string; image?: string; steady?: number; owner?: string; uid?: string } = {},
): WorkloadSnapshot {
  const sa = opts.sa ?? 'agent-1';
  return {
    ref: { group: 'apps', kind: opts.kind ?? 'Deployment', namespace: opts.namespace ?? 'agents', name, uid: opts.uid ?? `uid-${name}` },
    count: { steady: opts.steady ?? 2, extra: { type: 'none' } },
    serviceAccounts: [sa],
    fingerprints: podFingerprints(sa, [{ image: opts.image ?? 'registry.example/agent:1.0', command: ['serve'] }]),
    controllerUid: opts.owner,
  };
}

function lookups(...snapshots: WorkloadSnapshot[]): FamilyLookups {
  const index = new WorkloadIndex();
  for (const s of snapshots) index.set(s);
  return {
    workloadByUid: (uid) => index.byUid(uid),
    runningAs: (sa) => index.runningAs(sa),
    withFingerprint: (key) => index.withFingerprint(key),
    scalerOf: (ref) => index.scalerOf(ref),
  };
}

const nothing: WorkloadRef = { group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'new' };

describe('familyOf', () => {
  it("gathers the agent's workloads and their clones in any namespace and of any kind", () => {
    const view = lookups(
      snapshot('web'),
      // A clone run as another account name is found through provenance only.
      snapshot('copy', { namespace: 'agents-b', kind: 'StatefulSet', steady: 3 }),
      snapshot('other', { sa: 'someone', image: 'registry.example/other:1' }),
    );
    const f = familyOf(agent, view, [], [], nothing);
    expect(f.members.map((m) => m.ref.name).sort()).toEqual(['copy', 'web']);
    expect(f).toMatchObject({ workloads: 2, potential: 5 });
  });

  it('finds a clone written under another account by its fingerprint, and what the agent wrote by provenance', () => {
    const mine = snapshot('web', { sa: 'worker', image: 'registry.example/agent:1.0' });
    const clone = snapshot('sneaky', { namespace: 'elsewhere', sa: 'worker', image: 'registry.example/agent:9.9' });
    const f = familyOf(agent, lookups(mine, clone), ['uid-web'], [], nothing);
    expect(f.members.map((m) => m.ref.name).sort()).toEqual(['sneaky', 'web']);
  });

  it('looks each shared fingerprint up once, however many members carry it', () => {
    const replicas = Array.from({ length: 16 }, (_, i) => snapshot(`web-${i}`));
    const base = lookups(...replicas, snapshot('copy', { namespace: 'agents-b', sa: 'worker' }));
    let fingerprintLookups = 0;
    const counting: FamilyLookups = {
      ...base,
      withFingerprint: (key) => {
        fingerprintLookups++;
        return base.withFingerprint(key);
      },
    };
    const f = familyOf(agent, counting, [], [], nothing);
    expect(f.workloads).toBe(16);
    expect(fingerprintLookups).toBe(1);
  });

  it('never marks clones through an ignored base image', () => {
    const mine = snapshot('web', { sa: 'worker', image: 'docker.io/library/python:3.12' });
    const lookalike = snapshot('unrelated', { sa: 'worker', image: 'docker.io/library/python:3.11' });
    const view = lookups(mine, lookalike);
    expect(familyOf(agent, view, ['uid-web'], ['docker.io/library/*'], nothing).workloads).toBe(1);
    expect(familyOf(agent, view, ['uid-web'], [], nothing).workloads).toBe(2);
  });

  it("counts at the top owner only: a Deployment's ReplicaSets and Pods are not added", () => {
    const view = lookups(
      snapshot('web', { steady: 3 }),
      snapshot('web-abc', { kind: 'ReplicaSet', steady: 3, owner: 'uid-web' }),
      snapshot('web-abc-1', { kind: 'Pod', steady: 1, owner: 'uid-web-abc' }),
    );
    expect(familyOf(agent, view, [], [], nothing)).toMatchObject({ workloads: 1, potential: 3 });
  });

  it('leaves out the workload being judged', () => {
    const f = familyOf(agent, lookups(snapshot('web'), snapshot('api')), [], [], { ...nothing, name: 'web' });
    expect(f.members.map((m) => m.ref.name)).toEqual(['api']);
  });

  it("raises an HPA's target to the HPA's ceiling", () => {
    const hpa: WorkloadSnapshot = {
      ref: { group: 'autoscaling', kind: 'HorizontalPodAutoscaler', namespace: 'agents', name: 'web-hpa', uid: 'uid-h' },
      count: { steady: 8, extra: { type: 'none' } },
      serviceAccounts: [],
      fingerprints: [],
      scaleTarget: { group: 'apps', kind: 'Deployment', name: 'web' },
    };
    expect(familyOf(agent, lookups(snapshot('web', { steady: 2 }), hpa), ['uid-h'], [], nothing)).toMatchObject({
      workloads: 1,
      potential: 8,
    });
  });

  it('tells which member a new template clones', () => {
    const f = familyOf(agent, lookups(snapshot('web')), [], [], nothing);
    const same = podFingerprints('agent-1', [{ image: 'registry.example/agent:2.0', command: ['serve'] }]);
    const different = podFingerprints('agent-1', [{ image: 'registry.example/agent:2.0', command: ['other'] }]);
    const cloned = clonedMember(same, f, []);
    expect(cloned).toMatchObject({ kind: 'Deployment', name: 'web' });
    expect(cloned && describeWorkload(cloned)).toMatch(/^Deployment (\S+\/)?web$/);
    expect(clonedMember(different, f, [])).toBeUndefined();
    expect(clonedMember(same, f, ['registry.example/*'])).toBeUndefined();
  });
});
