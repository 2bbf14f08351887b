import { compileGlob } from '../policy/glob.ts';
import { potentialAt, potentialOf } from './instances.ts';
import type { AgentIdentity, FamilyFact, WorkloadRef, WorkloadSnapshot } from './types.ts';

/** The lookups a family is computed from; the cluster view answers them from memory. */
export interface FamilyLookups {
  workloadByUid(uid: string): WorkloadSnapshot | undefined;
  /** Top-owner workloads whose pods run as this service account name, in any namespace. */
  runningAs(serviceAccountName: string): Iterable<WorkloadSnapshot>;
  /** Top-owner workloads with this fingerprint key. */
  withFingerprint(key: string): Iterable<WorkloadSnapshot>;
  /** The HPA scaling this workload, if any. */
  scalerOf(ref: WorkloadRef): WorkloadSnapshot | undefined;
}

/** A family and its members. */
export interface Family extends FamilyFact {
  readonly members: readonly WorkloadSnapshot[];
}

/**
 * A family as aggregates kept beside the view hold it: the same facts as {@link familyOf}
 * without walking the members. Read it before the view or the provenance change again.
 */
export interface FamilyTally extends FamilyFact {
  /** As {@link clonedMember}: a member the new pod template clones, if any. */
  clonedMember(fingerprints: readonly { readonly key: string; readonly image: string }[]): WorkloadRef | undefined;
  /** The members one by one, the judged workload left out: for callers off the decision path. */
  members(): Iterable<WorkloadSnapshot>;
}

/**
 * A member's potential instances: its own, raised to its HPA's ceiling when an HPA
 * (`scaler`) scales it.
 */
export function memberPotential(member: WorkloadSnapshot, scaler: WorkloadSnapshot | undefined): number {
  const own = potentialOf(member.count);
  if (!scaler) return own;
  const raised = potentialAt(Math.max(member.count.steady, scaler.count.steady), member.count.extra);
  return own + Math.max(0, raised - own);
}

const refKey = (r: WorkloadRef) => `${r.group}/${r.kind}/${r.namespace}/${r.name}`;
const sameWorkload = (a: WorkloadRef, b: WorkloadRef) =>
  a.name === b.name && a.namespace === b.namespace && a.kind === b.kind && a.group === b.group;

/**
 * An agent's family (DESIGN.md): the workloads whose pods run as its service account
 * name, the workloads it created or scaled up (provenance, by UID), and every clone of
 * those (same fingerprint), in any namespace and of any kind. Counted at the top owner
 * only; an HPA raises its target to its ceiling. Images listed in `ignoreImages` never
 * mark a clone. `excluding` is the workload being judged.
 *
 * This walk is the definition: decisions read the same facts from the aggregates the view
 * keeps (cluster/family-aggregates.ts), which are tested against it.
 */
export function familyOf(
  agent: AgentIdentity,
  lookups: FamilyLookups,
  provenance: Iterable<string>,
  ignoreImages: readonly string[],
  excluding: WorkloadRef,
): Family {
  // Keyed by UID where there is one: a string the view already holds (and has hashed),
  // where a path would be built anew for every member on every decision.
  const members = new Map<string, WorkloadSnapshot>();
  const add = (s: WorkloadSnapshot | undefined) => {
    if (s && s.controllerUid === undefined && !s.scaleTarget) members.set(s.ref.uid ?? refKey(s.ref), s);
  };
  if (agent.serviceAccount) for (const s of lookups.runningAs(agent.serviceAccount.name)) add(s);
  for (const uid of provenance) add(lookups.workloadByUid(uid));

  const ignored = ignoreImages.map(compileGlob);
  const seeds = [...members.values()];
  // Members of one agent mostly share their fingerprints: each is looked up once, so the
  // walk grows with members plus clones, not with members times clones.
  const looked = new Set<string>();
  for (const seed of seeds) {
    for (const fp of seed.fingerprints) {
      if (looked.has(fp.key)) continue;
      looked.add(fp.key);
      if (ignored.some((g) => g.test(fp.image))) continue;
      for (const clone of lookups.withFingerprint(fp.key)) add(clone);
    }
  }

  for (const [id, m] of members) if (sameWorkload(m.ref, excluding)) members.delete(id);
  let potential = 0;
  for (const m of members.values()) potential += memberPotential(m, lookups.scalerOf(m.ref));
  return { workloads: members.size, potential, members: [...members.values()] };
}

/** The family member a new pod template clones (same fingerprint, image not ignored), if any. */
export function clonedMember(
  fingerprints: readonly { readonly key: string; readonly image: string }[],
  family: Family,
  ignoreImages: readonly string[],
): WorkloadRef | undefined {
  const ignored = ignoreImages.map(compileGlob);
  const wanted = new Set(fingerprints.filter((f) => !ignored.some((g) => g.test(f.image))).map((f) => f.key));
  if (wanted.size === 0) return undefined;
  return family.members.find((m) => m.fingerprints.some((f) => wanted.has(f.key)))?.ref;
}

/** A workload as messages name it: `Deployment agents/web`. */
export function describeWorkload(ref: WorkloadRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}
