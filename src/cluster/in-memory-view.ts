import type { NodeInfo } from '../admission/node-eligibility.ts';
import type { WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import type { ObservingClusterView } from './cluster-view.ts';
import { WorkloadIndex } from './workload-index.ts';

/**
 * The cluster as the guard has seen it through admitted agent writes, for running
 * without a cluster. Nodes come from configuration; it is always current.
 */
export class InMemoryClusterView implements ObservingClusterView {
  readonly #nodes: readonly NodeInfo[];
  readonly #index = new WorkloadIndex();

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

  /**
   * Always false: this view is built from admitted requests, and an admission is not a
   * commit. A CREATE of a name that exists reaches the webhooks before the apiserver
   * answers AlreadyExists, and another webhook can still refuse a DELETE the guard
   * admitted, so a replaced or deleted entry here does not prove the object is gone;
   * forgetting its provenance on that evidence would drop a live workload from the
   * agent's family for good.
   */
  isGone(_uid: string): boolean {
    return false;
  }

  nodes(): readonly NodeInfo[] {
    return this.#nodes;
  }

  staleness(): number {
    return 0;
  }

  observe(ref: WorkloadRef, snapshot: WorkloadSnapshot | null): void {
    if (snapshot === null) this.#index.delete(ref);
    else this.#index.set(snapshot);
  }
}
