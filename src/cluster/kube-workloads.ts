import type { FamilyTally } from '../core/family.ts';
import type { WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import { FamilyAggregates, type FamilyQuery } from './family-aggregates.ts';
import { KeyLists } from './key-lists.ts';
import { WorkloadIndex } from './workload-index.ts';

const keyOf = (group: string, kind: string, namespace: string, name: string) => `${group}/${kind}/${namespace}/${name}`;
const refKey = (r: WorkloadRef) => keyOf(r.group, r.kind, r.namespace, r.name);

/**
 * The view's workloads in two stores: top owners in a {@link WorkloadIndex} (by service
 * account, fingerprint and HPA target: what family lookups walk), and controlled
 * workloads (a Deployment's ReplicaSets, a CronJob's Jobs) by key and UID only. Family
 * lookups promise top owners, so indexing the controlled ones would only make every
 * lookup walk past them and cost memory. A workload moves between the stores when its
 * controller reference comes or goes (adoption, orphaning).
 */
export class ViewWorkloads {
  readonly #top = new WorkloadIndex();
  /** Families over the top owners: the only workloads a family counts. */
  readonly #families = new FamilyAggregates(this.#top);
  readonly #owned = new Map<string, WorkloadSnapshot>();
  readonly #ownedByUid = new Map<string, string>();
  /** Controlled workloads by their controller's UID: the way down from a Deployment to its ReplicaSets' pods. */
  readonly #ownedByController = new KeyLists();

  get size(): number {
    return this.#top.size + this.#owned.size;
  }

  get(group: string, kind: string, namespace: string, name: string): WorkloadSnapshot | undefined {
    const key = keyOf(group, kind, namespace, name);
    return this.#owned.get(key) ?? this.#top.get(group, kind, namespace, name);
  }

  byUid(uid: string): WorkloadSnapshot | undefined {
    const key = this.#ownedByUid.get(uid);
    if (key !== undefined) {
      const owned = this.#owned.get(key);
      if (owned) return owned;
    }
    return this.#top.byUid(uid);
  }

  runningAs(serviceAccountName: string): Iterable<WorkloadSnapshot> {
    return this.#top.runningAs(serviceAccountName);
  }

  withFingerprint(key: string): Iterable<WorkloadSnapshot> {
    return this.#top.withFingerprint(key);
  }

  scalerOf(ref: WorkloadRef): WorkloadSnapshot | undefined {
    return this.#top.scalerOf(ref);
  }

  family(query: FamilyQuery): FamilyTally {
    return this.#families.family(query);
  }

  /** The workloads the one with this UID controls (a Deployment's ReplicaSets, a CronJob's Jobs). */
  *ownedBy(controllerUid: string): Iterable<WorkloadSnapshot> {
    for (const key of this.#ownedByController.get(controllerUid)) {
      const owned = this.#owned.get(key);
      if (owned) yield owned;
    }
  }

  set(snapshot: WorkloadSnapshot): void {
    this.delete(snapshot.ref);
    if (snapshot.controllerUid === undefined) {
      this.#top.set(snapshot);
      return;
    }
    const key = refKey(snapshot.ref);
    this.#owned.set(key, snapshot);
    if (snapshot.ref.uid) this.#ownedByUid.set(snapshot.ref.uid, key);
    this.#ownedByController.add(snapshot.controllerUid, key);
  }

  delete(ref: WorkloadRef): void {
    const key = refKey(ref);
    const owned = this.#owned.get(key);
    if (owned) {
      this.#owned.delete(key);
      if (owned.ref.uid && this.#ownedByUid.get(owned.ref.uid) === key) this.#ownedByUid.delete(owned.ref.uid);
      if (owned.controllerUid !== undefined) this.#ownedByController.remove(owned.controllerUid, key);
    }
    this.#top.delete(ref);
  }
}
