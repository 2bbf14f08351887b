import type { NodeInfo } from '../admission/node-eligibility.ts';
import type { WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import type { ObservingClusterView } from './cluster-view.ts';
import { GoneUids } from './gone-uids.ts';
import { WorkloadIndex } from './workload-index.ts';

/**
 * The cluster as the guard has seen it through admitted agent writes, for running
 * without a cluster. Nodes come from configuration; it is always current.
 */
export class InMemoryClusterView implements ObservingClusterView {
  readonly #nodes: readonly NodeInfo[];
  readonly #index = new WorkloadIndex();
  readonly #gone = new GoneUids();

  constructor(nodes: readonly NodeInfo[]) {
    this.#nodes = nodes;
  }

  workload(group: string, kind: string, namespace: string, name: string): WorkloadSnapshot | undefined {
    return this.#index.get(group, kind, namespace, name);
  }

  workloadByUid(uid: string): WorkloadSnapshot | undefined {
    return this.#index.byUid(uid);
  }

  runningAs(serviceAccountName: string): Iterable<WorkloadSnapshot> {
    return this.#index.runningAs(serviceAccountName);
  }

  withFingerprint(key: string): Iterable<WorkloadSnapshot> {
    return this.#index.withFingerprint(key);
  }

  scalerOf(ref: WorkloadRef): WorkloadSnapshot | undefined {
    return this.#index.scalerOf(ref);
  }

  isGone(uid: string): boolean {
    return this.#gone.has(uid);
  }

  nodes(): readonly NodeInfo[] {
    return this.#nodes;
  }

  staleness(): number {
    return 0;
  }

  observe(ref: WorkloadRef, snapshot: WorkloadSnapshot | null): void {
    const old = this.#index.get(ref.group, ref.kind, ref.namespace, ref.name)?.ref.uid;
    // Deleted, or the name now holds another object: the old UID will never come back.
    if (old !== undefined && (snapshot === null || (snapshot.ref.uid !== undefined && snapshot.ref.uid !== old))) {
      this.#gone.mark(old);
    }
    if (snapshot === null) this.#index.delete(ref);
    else this.#index.set(snapshot);
  }
}
