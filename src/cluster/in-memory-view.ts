import type { NodeInfo } from '../admission/node-eligibility.ts';
import type { FamilyTally } from '../core/family.ts';
import type { WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import type { ObservingClusterView } from './cluster-view.ts';
import { FamilyAggregates, type FamilyQuery } from './family-aggregates.ts';
import { LruMap } from './lru-map.ts';
import { WorkloadIndex } from './workload-index.ts';

/**
 * Workloads the embedded view keeps by default: far above what one process without a
 * cluster sees, so that normal use never forgets one (about 1.3 KiB each, see BENCHMARKS.md).
 */
export const DEFAULT_MAX_WORKLOADS = 50_000;

/** Options of the embedded view. */
export interface InMemoryViewOptions {
  /** Workloads kept at most (default {@link DEFAULT_MAX_WORKLOADS}); the least recently written goes first. */
  readonly maxWorkloads?: number | undefined;
  /** Told of each workload forgotten for the bound. */
  readonly onEvict?: (() => void) | undefined;
}

/**
 * The cluster as the guard has seen it through admitted agent writes, for running
 * without a cluster. Nodes come from configuration; it is always current. It keeps the
 * `maxWorkloads` most recently written workloads: one forgotten for the bound no longer
 * counts in its agent's family, as if the guard had never seen it.
 */
export class InMemoryClusterView implements ObservingClusterView {
  readonly #nodes: readonly NodeInfo[];
  readonly #index = new WorkloadIndex();
  readonly #families = new FamilyAggregates(this.#index);
  readonly #written: LruMap<WorkloadRef>;
  readonly #onEvict: (() => void) | undefined;

  constructor(nodes: readonly NodeInfo[], options: InMemoryViewOptions = {}) {
    this.#nodes = nodes;
    this.#written = new LruMap(options.maxWorkloads ?? DEFAULT_MAX_WORKLOADS);
    this.#onEvict = options.onEvict;
  }

  /** Workloads forgotten for the `maxWorkloads` bound since this view was made. */
  get evictions(): number {
    return this.#written.evictions;
  }

  /** Workloads kept. */
  get size(): number {
    return this.#index.size;
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

  family(query: FamilyQuery): FamilyTally {
    return this.#families.family(query);
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
    const key = `${ref.group}/${ref.kind}/${ref.namespace}/${ref.name}`;
    if (snapshot === null) {
      this.#index.delete(ref);
      this.#written.delete(key);
      return;
    }
    this.#index.set(snapshot);
    const evicted = this.#written.set(key, snapshot.ref);
    if (evicted === undefined) return;
    this.#index.delete(evicted.value);
    this.#onEvict?.();
  }
}
