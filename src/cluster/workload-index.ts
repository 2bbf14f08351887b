import type { WorkloadRef, WorkloadSnapshot } from '../core/types.ts';

/** The key a workload is held under: `group/kind/namespace/name`. */
export const indexKeyOf = (group: string, kind: string, namespace: string, name: string): string =>
  `${group}/${kind}/${namespace}/${name}`;
const keyOf = indexKeyOf;
const refKey = (r: WorkloadRef) => keyOf(r.group, r.kind, r.namespace, r.name);

/**
 * Told of every change to an index, after the index has applied it: the snapshot held at
 * a key before (undefined when there was none) and after (undefined when deleted).
 */
export type IndexObserver = (key: string, before: WorkloadSnapshot | undefined, after: WorkloadSnapshot | undefined) => void;

/**
 * Workload snapshots with the indexes family lookups need (by UID, by service account
 * name, by fingerprint, HPA by target), kept in step on every set and delete so that a
 * lookup on the request path never scans the whole cluster.
 */
export class WorkloadIndex {
  readonly #byKey = new Map<string, WorkloadSnapshot>();
  readonly #byUid = new Map<string, string>();
  readonly #bySa = new Map<string, Set<string>>();
  readonly #byFingerprint = new Map<string, Set<string>>();
  readonly #scalerByTarget = new Map<string, string>();
  readonly #observers: IndexObserver[] = [];

  get size(): number {
    return this.#byKey.size;
  }

  get(group: string, kind: string, namespace: string, name: string): WorkloadSnapshot | undefined {
    return this.#byKey.get(keyOf(group, kind, namespace, name));
  }

  /** The snapshot held under an index key (`group/kind/namespace/name`, as {@link IndexObserver} names it). */
  byKey(key: string): WorkloadSnapshot | undefined {
    return this.#byKey.get(key);
  }

  /** Tells `observer` of every later set and delete (aggregates kept beside the index). */
  observe(observer: IndexObserver): void {
    this.#observers.push(observer);
  }

  byUid(uid: string): WorkloadSnapshot | undefined {
    const key = this.#byUid.get(uid);
    return key === undefined ? undefined : this.#byKey.get(key);
  }

  *runningAs(serviceAccountName: string): Iterable<WorkloadSnapshot> {
    yield* this.#resolve(this.#bySa.get(serviceAccountName));
  }

  *withFingerprint(key: string): Iterable<WorkloadSnapshot> {
    yield* this.#resolve(this.#byFingerprint.get(key));
  }

  scalerOf(ref: WorkloadRef): WorkloadSnapshot | undefined {
    // Asked for every family member on every decision: no key is built when there is no HPA.
    if (this.#scalerByTarget.size === 0) return undefined;
    const key = this.#scalerByTarget.get(refKey(ref));
    return key === undefined ? undefined : this.#byKey.get(key);
  }

  *values(): Iterable<WorkloadSnapshot> {
    yield* this.#byKey.values();
  }

  set(snapshot: WorkloadSnapshot): void {
    const key = refKey(snapshot.ref);
    const before = this.#remove(key);
    this.#byKey.set(key, snapshot);
    if (snapshot.ref.uid) this.#byUid.set(snapshot.ref.uid, key);
    for (const sa of snapshot.serviceAccounts) addTo(this.#bySa, sa, key);
    for (const fp of snapshot.fingerprints) addTo(this.#byFingerprint, fp.key, key);
    const t = snapshot.scaleTarget;
    if (t) this.#scalerByTarget.set(keyOf(t.group, t.kind, snapshot.ref.namespace, t.name), key);
    for (const o of this.#observers) o(key, before, snapshot);
  }

  delete(ref: WorkloadRef): void {
    const key = refKey(ref);
    const before = this.#remove(key);
    if (before) for (const o of this.#observers) o(key, before, undefined);
  }

  #remove(key: string): WorkloadSnapshot | undefined {
    const old = this.#byKey.get(key);
    if (!old) return undefined;
    this.#byKey.delete(key);
    if (old.ref.uid && this.#byUid.get(old.ref.uid) === key) this.#byUid.delete(old.ref.uid);
    for (const sa of old.serviceAccounts) removeFrom(this.#bySa, sa, key);
    for (const fp of old.fingerprints) removeFrom(this.#byFingerprint, fp.key, key);
    const t = old.scaleTarget;
    if (t) {
      const targetKey = keyOf(t.group, t.kind, old.ref.namespace, t.name);
      if (this.#scalerByTarget.get(targetKey) === key) this.#scalerByTarget.delete(targetKey);
    }
    return old;
  }

  *#resolve(keys: ReadonlySet<string> | undefined): Iterable<WorkloadSnapshot> {
    for (const k of keys ?? []) {
      const s = this.#byKey.get(k);
      if (s) yield s;
    }
  }
}

function addTo(index: Map<string, Set<string>>, value: string, key: string): void {
  let set = index.get(value);
  if (!set) index.set(value, (set = new Set()));
  set.add(key);
}

function removeFrom(index: Map<string, Set<string>>, value: string, key: string): void {
  const set = index.get(value);
  if (!set) return;
  set.delete(key);
  if (set.size === 0) index.delete(value);
}
