import { type FamilyTally, memberPotential } from '../core/family.ts';
import type { AgentIdentity, WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import { compileGlob, type Glob } from '../policy/glob.ts';
import { LruMap } from './lru-map.ts';
import { indexKeyOf, type WorkloadIndex } from './workload-index.ts';

/**
 * Families kept at most (one per agent and list of ignored images); the least recently
 * asked for is dropped, and built again from the index when it is asked for next.
 */
export const DEFAULT_MAX_FAMILIES = 2_048;

/** A provenance entry as the ledger keeps it: only the UID is read. */
export interface ProvenanceUid {
  readonly uid: string;
}

/** Whose family, and without what: the arguments of {@link familyOf}. */
export interface FamilyQuery {
  readonly agent: AgentIdentity;
  /** The ledger's list: when the same array comes again, nothing is compared. */
  readonly provenance: readonly ProvenanceUid[];
  /** Images that never mark a clone. */
  readonly ignoreImages: readonly string[];
  /** The judged workload, left out. */
  readonly excluding: WorkloadRef;
}

interface Member {
  readonly snapshot: WorkloadSnapshot;
  readonly potential: number;
}

const NONE: readonly string[] = [];

/**
 * One agent's family under one list of ignored images, with its totals. The family is
 * the service-account group and the provenance (the seeds) plus every workload sharing a
 * fingerprint with a seed, counted at the top owner, HPAs left out: what
 * {@link familyOf} walks, kept as counts so that a change moves only what it touches.
 */
class TrackedFamily {
  provenanceList: readonly ProvenanceUid[] = [];
  /** Provenance UIDs, with how many entries of the list name each. */
  readonly provenance = new Map<string, number>();
  /** Seeds by index key, with the fingerprint keys each one expands (images not ignored). */
  readonly seeds = new Map<string, readonly string[]>();
  /** Fingerprint keys expanded, with how many seeds expand each. */
  readonly expanded = new Map<string, number>();
  readonly members = new Map<string, Member>();
  /** Member index keys by fingerprint key, for the clone check. */
  readonly membersByFingerprint = new Map<string, Set<string>>();
  potential = 0;
  readonly serviceAccount: string | undefined;
  readonly ignored: readonly Glob[];

  constructor(serviceAccount: string | undefined, ignored: readonly Glob[]) {
    this.serviceAccount = serviceAccount;
    this.ignored = ignored;
  }
}

/**
 * Agents' families kept up to date as the index changes and as each agent's provenance
 * changes, so that a decision reads its family's totals in constant time however large
 * the family is. Each family is built once by a walk of the index and then moved by
 * events: a change to one workload re-evaluates that workload in the families it
 * concerns (found through routes by service account, provenance UID and expanded
 * fingerprint), and a fingerprint that starts or stops being expanded re-evaluates the
 * workloads that carry it. UIDs are taken to be unique across the index, as Kubernetes
 * makes them.
 */
export class FamilyAggregates {
  readonly #index: WorkloadIndex;
  readonly #families: LruMap<TrackedFamily>;
  readonly #bySa = new Map<string, Set<TrackedFamily>>();
  readonly #byUid = new Map<string, Set<TrackedFamily>>();
  readonly #byFingerprint = new Map<string, Set<TrackedFamily>>();

  constructor(index: WorkloadIndex, options: { readonly maxFamilies?: number | undefined } = {}) {
    this.#index = index;
    this.#families = new LruMap(options.maxFamilies ?? DEFAULT_MAX_FAMILIES);
    index.observe((key, before, after) => this.#changed(key, before, after));
  }

  /** Families kept now. */
  get size(): number {
    return this.#families.size;
  }

  /** The agent's family: the facts {@link familyOf} gives for the same query. */
  family({ agent, provenance, ignoreImages, excluding }: FamilyQuery): FamilyTally {
    const sa = agent.serviceAccount?.name;
    const id = `${agent.username}\u0000${sa ?? ''}\u0000${ignoreImages.join('\u0000')}`;
    const family = this.#families.get(id) ?? this.#build(id, sa, ignoreImages);
    this.#syncProvenance(family, provenance);
    return tallyOf(family, indexKeyOf(excluding.group, excluding.kind, excluding.namespace, excluding.name));
  }

  #build(id: string, sa: string | undefined, ignoreImages: readonly string[]): TrackedFamily {
    const family = new TrackedFamily(sa, ignoreImages.map(compileGlob));
    const evicted = this.#families.set(id, family);
    if (evicted) this.#forget(evicted.value);
    if (sa === undefined) return family;
    route(this.#bySa, sa, family);
    const keys = [...this.#index.runningAs(sa)].map((s) => indexKeyOf(s.ref.group, s.ref.kind, s.ref.namespace, s.ref.name));
    for (const key of keys) this.#evaluate(family, key);
    return family;
  }

  #forget(family: TrackedFamily): void {
    if (family.serviceAccount !== undefined) unroute(this.#bySa, family.serviceAccount, family);
    for (const uid of family.provenance.keys()) unroute(this.#byUid, uid, family);
    for (const key of family.expanded.keys()) unroute(this.#byFingerprint, key, family);
  }

  /**
   * Brings the family's provenance to `list`. The ledger keeps provenance in order (an
   * entry is dropped, or appended, a refreshed one moving to the end), so one walk of the
   * old and the new list finds what changed, in time proportional to the list but without
   * building a set of it on every decision. Counts keep it exact whatever the order and
   * any repeated UID: what is dropped and then added again is only evaluated twice.
   */
  #syncProvenance(family: TrackedFamily, list: readonly ProvenanceUid[]): void {
    const before = family.provenanceList;
    if (list === before) return;
    family.provenanceList = list;
    // Entries the ledger kept are the same objects in both lists: a reference compare
    // settles most steps of the walk before any string is compared.
    let i = 0;
    let j = 0;
    for (; i < before.length && j < list.length; i++) {
      const old = before[i] as ProvenanceUid;
      const now = list[j] as ProvenanceUid;
      if (old === now || old.uid === now.uid) j++;
      else this.#dropUid(family, old.uid);
    }
    for (; i < before.length; i++) this.#dropUid(family, (before[i] as ProvenanceUid).uid);
    for (; j < list.length; j++) this.#addUid(family, (list[j] as ProvenanceUid).uid);
  }

  #addUid(family: TrackedFamily, uid: string): void {
    const count = family.provenance.get(uid) ?? 0;
    family.provenance.set(uid, count + 1);
    if (count > 0) return;
    route(this.#byUid, uid, family);
    this.#evaluateUid(family, uid);
  }

  #dropUid(family: TrackedFamily, uid: string): void {
    const count = family.provenance.get(uid) ?? 0;
    if (count > 1) {
      family.provenance.set(uid, count - 1);
      return;
    }
    if (count === 0) return;
    family.provenance.delete(uid);
    unroute(this.#byUid, uid, family);
    this.#evaluateUid(family, uid);
  }

  #evaluateUid(family: TrackedFamily, uid: string): void {
    const s = this.#index.byUid(uid);
    if (s) this.#evaluate(family, indexKeyOf(s.ref.group, s.ref.kind, s.ref.namespace, s.ref.name));
  }

  #changed(key: string, before: WorkloadSnapshot | undefined, after: WorkloadSnapshot | undefined): void {
    if (this.#families.size === 0) return;
    const touched = new Set<TrackedFamily>();
    this.#concerned(before, touched);
    this.#concerned(after, touched);
    for (const family of touched) this.#evaluate(family, key);
    // An HPA raises its target: the target's potential moves wherever it is a member.
    const targets = new Set<string>();
    for (const s of [before, after]) {
      const t = s?.scaleTarget;
      if (s && t) targets.add(indexKeyOf(t.group, t.kind, s.ref.namespace, t.name));
    }
    for (const target of targets) this.#rescale(target);
  }

  /** Adds the families a workload may count in: by service account, by provenance, by expanded fingerprint. */
  #concerned(s: WorkloadSnapshot | undefined, into: Set<TrackedFamily>): void {
    if (!s) return;
    for (const sa of s.serviceAccounts) addAll(into, this.#bySa.get(sa));
    if (s.ref.uid) addAll(into, this.#byUid.get(s.ref.uid));
    for (const fp of s.fingerprints) addAll(into, this.#byFingerprint.get(fp.key));
  }

  #rescale(key: string): void {
    const target = this.#index.byKey(key);
    if (!target) return;
    const touched = new Set<TrackedFamily>();
    this.#concerned(target, touched);
    for (const family of touched) {
      const member = family.members.get(key);
      if (!member) continue;
      const potential = memberPotential(target, this.#index.scalerOf(target.ref));
      family.potential += potential - member.potential;
      family.members.set(key, { snapshot: member.snapshot, potential });
    }
  }

  /** Brings the workload at `key` up to date in `family`: as a seed, then as a member. */
  #evaluate(family: TrackedFamily, key: string): void {
    const s = this.#index.byKey(key);
    const expands = s && isSeed(family, s) ? expandedKeys(s, family.ignored) : NONE;
    const before = family.seeds.get(key) ?? NONE;
    if (expands.length === 0) family.seeds.delete(key);
    else family.seeds.set(key, expands);
    // Counted up before down: a key the workload keeps never passes through zero.
    const started: string[] = [];
    const stopped: string[] = [];
    for (const k of expands) if (this.#expand(family, k, 1) === 1) started.push(k);
    for (const k of before) if (this.#expand(family, k, -1) === 0) stopped.push(k);
    this.#evaluateMember(family, key, s);
    for (const k of [...started, ...stopped]) {
      for (const clone of this.#index.withFingerprint(k)) {
        const cloneKey = indexKeyOf(clone.ref.group, clone.ref.kind, clone.ref.namespace, clone.ref.name);
        if (cloneKey !== key) this.#evaluateMember(family, cloneKey, clone);
      }
    }
  }

  #expand(family: TrackedFamily, key: string, by: 1 | -1): number {
    const count = (family.expanded.get(key) ?? 0) + by;
    if (count === 0) {
      family.expanded.delete(key);
      unroute(this.#byFingerprint, key, family);
    } else {
      family.expanded.set(key, count);
      if (count === 1 && by === 1) route(this.#byFingerprint, key, family);
    }
    return count;
  }

  #evaluateMember(family: TrackedFamily, key: string, s: WorkloadSnapshot | undefined): void {
    const old = family.members.get(key);
    const member = s !== undefined && (isSeed(family, s) || (isCounted(s) && s.fingerprints.some((fp) => family.expanded.has(fp.key))));
    if (old && member && old.snapshot === s) return;
    if (old) {
      family.members.delete(key);
      family.potential -= old.potential;
      for (const fp of old.snapshot.fingerprints) unroute(family.membersByFingerprint, fp.key, key);
    }
    if (!member || !s) return;
    const potential = memberPotential(s, this.#index.scalerOf(s.ref));
    family.members.set(key, { snapshot: s, potential });
    family.potential += potential;
    for (const fp of s.fingerprints) route(family.membersByFingerprint, fp.key, key);
  }
}

/** Counted at the top owner only, and an HPA is not a member (it raises its target). */
const isCounted = (s: WorkloadSnapshot) => s.controllerUid === undefined && !s.scaleTarget;

function isSeed(family: TrackedFamily, s: WorkloadSnapshot): boolean {
  if (!isCounted(s)) return false;
  const sa = family.serviceAccount;
  if (sa !== undefined && s.serviceAccounts.includes(sa)) return true;
  return s.ref.uid !== undefined && s.ref.uid !== '' && family.provenance.has(s.ref.uid);
}

/** The distinct fingerprint keys of a seed whose image is not ignored. */
function expandedKeys(s: WorkloadSnapshot, ignored: readonly Glob[]): readonly string[] {
  const keys: string[] = [];
  for (const fp of s.fingerprints) {
    if (!keys.includes(fp.key) && !ignored.some((g) => g.test(fp.image))) keys.push(fp.key);
  }
  return keys.length === 0 ? NONE : keys;
}

function tallyOf(family: TrackedFamily, excluded: string): FamilyTally {
  const out = family.members.get(excluded);
  return {
    workloads: family.members.size - (out ? 1 : 0),
    potential: family.potential - (out?.potential ?? 0),
    clonedMember(fingerprints) {
      for (const fp of fingerprints) {
        if (family.ignored.some((g) => g.test(fp.image))) continue;
        for (const key of family.membersByFingerprint.get(fp.key) ?? NONE) {
          if (key !== excluded) return family.members.get(key)?.snapshot.ref;
        }
      }
      return undefined;
    },
    *members() {
      for (const [key, m] of family.members) if (key !== excluded) yield m.snapshot;
    },
  };
}

function route<T>(routes: Map<string, Set<T>>, key: string, value: T): void {
  let set = routes.get(key);
  if (!set) routes.set(key, (set = new Set()));
  set.add(value);
}

function unroute<T>(routes: Map<string, Set<T>>, key: string, value: T): void {
  const set = routes.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) routes.delete(key);
}

function addAll<T>(into: Set<T>, from: ReadonlySet<T> | undefined): void {
  if (from) for (const v of from) into.add(v);
}
