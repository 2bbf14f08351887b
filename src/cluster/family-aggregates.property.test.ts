import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clonedMember, type FamilyLookups, familyOf } from '../core/family.ts';
import { podFingerprints } from '../core/fingerprint.ts';
import type { AgentIdentity, ExtraInstances, WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import { FamilyAggregates, type ProvenanceUid } from './family-aggregates.ts';
import { ViewWorkloads } from './kube-workloads.ts';
import { indexKeyOf, WorkloadIndex } from './workload-index.ts';

/**
 * The incremental families against the full walk ({@link familyOf}, the reference) after
 * random sequences of view changes (workloads and HPAs set and deleted, fingerprints and
 * service accounts changed, controller-owned children adopted and orphaned) and provenance
 * changes, under every list of ignored images and judged workload, asked at random points
 * so that families are built early and then moved by events.
 */

const NAMESPACES = ['a', 'b'];
const NAMES = ['w0', 'w1', 'w2'];
const SAS = ['agent-1', 'worker', 'agent-2'];
const IMAGES = ['registry.example/agent:1', 'docker.io/library/python:3.12', 'registry.example/other:2'];
const KINDS = [
  { group: 'apps', kind: 'Deployment' },
  { group: 'apps', kind: 'StatefulSet' },
  { group: 'apps', kind: 'ReplicaSet' },
  { group: '', kind: 'Pod' },
];
const AGENTS: AgentIdentity[] = [
  // Two agents share a service account name (in other namespaces): one group, two provenances.
  { username: 'system:serviceaccount:agents:agent-1', serviceAccount: { namespace: 'agents', name: 'agent-1' } },
  { username: 'system:serviceaccount:other:agent-1', serviceAccount: { namespace: 'other', name: 'agent-1' } },
  { username: 'system:serviceaccount:agents:agent-2', serviceAccount: { namespace: 'agents', name: 'agent-2' } },
  { username: 'alice' },
];
const IGNORES: readonly (readonly string[])[] = [[], ['docker.io/library/*'], ['registry.example/*']];
const EXTRAS: ExtraInstances[] = [
  { type: 'none' },
  { type: 'surge-fixed', instances: 1 },
  { type: 'surge-percent', percent: 25 },
  { type: 'overlap', runs: 2 },
];

type Op =
  | {
      readonly type: 'workload';
      readonly at: number;
      readonly kind: number;
      readonly sas: readonly number[];
      /** Set: the fingerprints carry this service account instead (another template of the workload). */
      readonly fingerprintSa: number | undefined;
      readonly containers: readonly { readonly image: number; readonly args: boolean }[];
      readonly steady: number;
      readonly extra: number;
      readonly owned: boolean;
      readonly newUid: boolean;
    }
  | { readonly type: 'hpa'; readonly at: number; readonly target: number; readonly kind: number; readonly max: number; readonly newUid: boolean }
  | { readonly type: 'delete'; readonly at: number; readonly kind: number; readonly hpa: boolean }
  | { readonly type: 'provenance-add'; readonly agent: number; readonly uid: number }
  | { readonly type: 'provenance-remove'; readonly agent: number; readonly position: number }
  | { readonly type: 'provenance-scramble'; readonly agent: number; readonly seed: number }
  | { readonly type: 'ask'; readonly agent: number; readonly ignore: number; readonly excluding: number };

const at = fc.integer({ min: 0, max: NAMESPACES.length * NAMES.length - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('workload' as const),
      at,
      kind: fc.integer({ min: 0, max: KINDS.length - 1 }),
      // Mostly one service account, the first agent's or another's.
      sas: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 0, max: 1 }).map((i) => [i]) },
        { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: SAS.length - 1 }), { minLength: 0, maxLength: 2 }) },
      ),
      fingerprintSa: fc.option(fc.integer({ min: 0, max: SAS.length - 1 }), { nil: undefined, freq: 3 }),
      containers: fc.array(fc.record({ image: fc.integer({ min: 0, max: IMAGES.length - 1 }), args: fc.boolean() }), {
        minLength: 1,
        maxLength: 2,
      }),
      steady: fc.integer({ min: 0, max: 6 }),
      extra: fc.integer({ min: 0, max: EXTRAS.length - 1 }),
      owned: fc.boolean(),
      newUid: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('hpa' as const),
      at,
      target: fc.integer({ min: 0, max: NAMES.length - 1 }),
      kind: fc.integer({ min: 0, max: 1 }),
      max: fc.integer({ min: 0, max: 10 }),
      newUid: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ type: fc.constant('delete' as const), at, kind: fc.integer({ min: 0, max: KINDS.length - 1 }), hpa: fc.boolean() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('provenance-add' as const),
      agent: fc.integer({ min: 0, max: AGENTS.length - 1 }),
      uid: fc.nat(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('provenance-scramble' as const),
      agent: fc.integer({ min: 0, max: AGENTS.length - 1 }),
      seed: fc.nat(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('provenance-remove' as const),
      agent: fc.integer({ min: 0, max: AGENTS.length - 1 }),
      position: fc.nat(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('ask' as const),
      agent: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: AGENTS.length - 1 }) }),
      ignore: fc.integer({ min: 0, max: IGNORES.length - 1 }),
      excluding: fc.integer({ min: 0, max: NAMESPACES.length * NAMES.length * KINDS.length }),
    }),
  },
);

/** The view store under test: the in-memory view's single index, or the kube view's two stores. */
interface Store extends FamilyLookups {
  set(s: WorkloadSnapshot): void;
  delete(ref: WorkloadRef): void;
  family: FamilyAggregates['family'];
}

/** The lookups the walk reads and the families under test, over one store. */
function storeOf(w: Pick<WorkloadIndex, 'set' | 'delete' | 'byUid' | 'runningAs' | 'withFingerprint' | 'scalerOf'>, families: Pick<FamilyAggregates, 'family'>): Store {
  return {
    set: (s) => w.set(s),
    delete: (r) => w.delete(r),
    workloadByUid: (uid) => w.byUid(uid),
    runningAs: (sa) => w.runningAs(sa),
    withFingerprint: (key) => w.withFingerprint(key),
    scalerOf: (ref) => w.scalerOf(ref),
    family: (query) => families.family(query),
  };
}

function indexStore(maxFamilies: number): Store {
  const index = new WorkloadIndex();
  return storeOf(index, new FamilyAggregates(index, { maxFamilies }));
}

function kubeStore(): Store {
  const w = new ViewWorkloads();
  return storeOf(w, w);
}

/** How often the comparisons met what makes families hard, counted per property. */
const seen = { asks: 0, members: 0, clonesOnly: 0, raised: 0, excluded: 0, provenanceOnly: 0 };

function tally(agent: AgentIdentity, walked: ReturnType<typeof familyOf>, excluding: WorkloadRef, store: Store, provenance: readonly string[]): void {
  seen.asks++;
  if (walked.members.length > 0) seen.members++;
  const sa = agent.serviceAccount?.name;
  const seed = (m: WorkloadSnapshot) => (sa !== undefined && m.serviceAccounts.includes(sa)) || provenance.includes(m.ref.uid ?? '');
  if (walked.members.some((m) => !seed(m))) seen.clonesOnly++;
  if (walked.members.some((m) => !(sa !== undefined && m.serviceAccounts.includes(sa)) && provenance.includes(m.ref.uid ?? ''))) seen.provenanceOnly++;
  if (walked.members.some((m) => store.scalerOf(m.ref) !== undefined)) seen.raised++;
  if (familyOf(agent, store, provenance, [], { ...excluding, name: '-' }).workloads !== familyOf(agent, store, provenance, [], excluding).workloads) seen.excluded++;
}

const place = (n: number) => ({ namespace: NAMESPACES[n % NAMESPACES.length] ?? 'a', name: NAMES[Math.floor(n / NAMESPACES.length)] ?? 'w0' });
const keyOfRef = (r: WorkloadRef) => indexKeyOf(r.group, r.kind, r.namespace, r.name);

/** Runs the operations, comparing every family asked for with the walk, and all of them at the end. */
function run(store: Store, ops: readonly Op[]): void {
  const uids: string[] = [];
  const live = new Map<string, string>();
  const provenance: ProvenanceUid[][] = AGENTS.map(() => []);
  let next = 0;
  const uidFor = (key: string, fresh: boolean) => {
    const kept = live.get(key);
    if (kept !== undefined && !fresh) return kept;
    const uid = `uid-${next++}`;
    uids.push(uid);
    live.set(key, uid);
    return uid;
  };

  const compare = (agentIndex: number, ignoreIndex: number, excludingIndex: number) => {
    const agent = AGENTS[agentIndex] ?? AGENTS[0];
    const ignore = IGNORES[ignoreIndex] ?? [];
    if (!agent) return;
    const kind = KINDS[excludingIndex % KINDS.length] ?? { group: 'apps', kind: 'Deployment' };
    const excluding: WorkloadRef = { ...kind, ...place(Math.floor(excludingIndex / KINDS.length)) };
    const list = provenance[agentIndex] ?? [];
    const walked = familyOf(
      agent,
      store,
      list.map((p) => p.uid),
      ignore,
      excluding,
    );
    tally(agent, walked, excluding, store, list.map((p) => p.uid));
    const kept = store.family({ agent, provenance: list, ignoreImages: ignore, excluding });
    const label = `${agent.username} ignoring [${ignore.join(', ')}] without ${keyOfRef(excluding)}`;
    expect([...kept.members()].map((m) => keyOfRef(m.ref)).sort(), label).toEqual(walked.members.map((m) => keyOfRef(m.ref)).sort());
    expect({ workloads: kept.workloads, potential: kept.potential }, label).toEqual({
      workloads: walked.workloads,
      potential: walked.potential,
    });
    // The clone check: found exactly when the walk finds one, and then a member that carries a wanted fingerprint.
    for (const sa of SAS) {
      for (const image of IMAGES) {
        const wanted = podFingerprints(sa, [{ image, args: ['x'] }, { image: IMAGES[0], args: [] }]);
        const found = kept.clonedMember(wanted);
        expect(found === undefined, `${label}: clone of ${sa} ${image}`).toBe(clonedMember(wanted, walked, ignore) === undefined);
        if (found) {
          const member = walked.members.filter((m) => keyOfRef(m.ref) === keyOfRef(found));
          expect(clonedMember(wanted, { ...walked, members: member }, ignore), label).toBeDefined();
        }
      }
    }
  };

  for (const o of ops) {
    switch (o.type) {
      case 'workload': {
        const kind = KINDS[o.kind] ?? { group: 'apps', kind: 'Deployment' };
        const ref = { ...kind, ...place(o.at) };
        const key = keyOfRef(ref);
        const sas = o.sas.map((i) => SAS[i] ?? 'worker');
        const fingerprintSas = o.fingerprintSa === undefined ? sas : [SAS[o.fingerprintSa] ?? 'worker'];
        const fingerprints = fingerprintSas.flatMap((sa) =>
          podFingerprints(
            sa,
            o.containers.map((c) => ({ image: IMAGES[c.image], args: c.args ? ['x'] : [] })),
          ),
        );
        store.set({
          ref: { ...ref, uid: uidFor(key, o.newUid) },
          count: { steady: o.steady, extra: EXTRAS[o.extra] ?? { type: 'none' } },
          serviceAccounts: sas,
          fingerprints,
          controllerUid: o.owned && kind.kind !== 'Deployment' ? (uids[o.steady % Math.max(1, uids.length)] ?? 'uid-owner') : undefined,
        });
        break;
      }
      case 'hpa': {
        const ref = { group: 'autoscaling', kind: 'HorizontalPodAutoscaler', ...place(o.at) };
        const target = KINDS[o.kind] ?? { group: 'apps', kind: 'Deployment' };
        store.set({
          ref: { ...ref, uid: uidFor(keyOfRef(ref), o.newUid) },
          count: { steady: o.max, extra: { type: 'none' } },
          serviceAccounts: [],
          fingerprints: [],
          scaleTarget: { group: target.group, kind: target.kind, name: NAMES[o.target] ?? 'w0' },
        });
        break;
      }
      case 'delete': {
        const kind = o.hpa ? { group: 'autoscaling', kind: 'HorizontalPodAutoscaler' } : (KINDS[o.kind] ?? { group: 'apps', kind: 'Deployment' });
        const ref = { ...kind, ...place(o.at) };
        store.delete(ref);
        live.delete(keyOfRef(ref));
        break;
      }
      case 'provenance-add': {
        // Mostly a UID the view holds now, sometimes one it held once.
        const pool = o.uid % 4 === 0 || live.size === 0 ? uids : [...live.values()];
        const uid = pool.length === 0 ? 'uid-none' : (pool[Math.floor(o.uid / 4) % pool.length] ?? 'uid-none');
        const list = provenance[o.agent] ?? [];
        // A new array, as the ledger makes one: the UID moves to the end.
        provenance[o.agent] = [...list.filter((p) => p.uid !== uid), { uid }];
        break;
      }
      case 'provenance-remove': {
        const list = provenance[o.agent] ?? [];
        if (list.length === 0) break;
        const gone = list[o.position % list.length];
        provenance[o.agent] = list.filter((p) => p !== gone);
        break;
      }
      case 'provenance-scramble': {
        // Not what the ledger writes (it keeps the order and each UID once), but what a
        // hand-edited state could hold: the aggregates must still agree.
        const list = provenance[o.agent] ?? [];
        if (list.length === 0) break;
        const repeated = list[o.seed % list.length];
        const rotated = [...list.slice(o.seed % list.length), ...list.slice(0, o.seed % list.length)].reverse();
        provenance[o.agent] = repeated && o.seed % 2 === 0 ? [...rotated, repeated] : rotated;
        break;
      }
      case 'ask':
        compare(o.agent, o.ignore, o.excluding);
        break;
    }
  }
  for (let a = 0; a < AGENTS.length; a++) for (let i = 0; i < IGNORES.length; i++) compare(a, i, 0);
}

/** Runs the property, then checks the runs met every hard case (so that agreeing was not vacuous). */
function check(store: () => Store, numRuns: number): void {
  for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k] = 0;
  fc.assert(
    fc.property(fc.array(op, { minLength: 20, maxLength: 150, size: 'max' }), (ops) => run(store(), ops)),
    { numRuns },
  );
  expect(seen.asks).toBeGreaterThan(numRuns * 10);
  for (const [what, n] of Object.entries(seen)) expect(n / seen.asks, what).toBeGreaterThan(0.05);
}

describe('FamilyAggregates against the full walk', () => {
  it('agree over the in-memory view index after random changes', () => check(() => indexStore(64), 150));

  it('agree when families are dropped for the bound and built again', () => check(() => indexStore(2), 80));

  it("agree over the kube view's stores, where controlled workloads move between them", () => check(kubeStore, 150));
});
