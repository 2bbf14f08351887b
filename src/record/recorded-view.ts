import type { ClusterView } from '../cluster/cluster-view.ts';
import type { NodeInfo } from '../admission/node-eligibility.ts';
import type { FamilyTally } from '../core/family.ts';
import type { InstanceCount, WorkloadRef, WorkloadSnapshot } from '../core/types.ts';

/** A workload the interpretation looked up (a Scale's parent, an HPA's target), as recorded. */
export interface RecordedWorkload {
  readonly ref: WorkloadRef;
  readonly count: InstanceCount;
}

/** What the interpretation of one request read from the view. */
export interface ViewLookups {
  readonly workloads: readonly RecordedWorkload[];
  readonly nodes: readonly NodeInfo[] | undefined;
}

const keyOf = (group: string, kind: string, namespace: string, name: string) => JSON.stringify([group, kind, namespace, name]);

/**
 * Wraps a view so that the workloads and nodes an interpretation reads are kept. Only
 * the ref and the count of a workload are kept: its fingerprints hold command lines.
 */
export function watchingLookups(view: ClusterView): { readonly view: ClusterView; lookups(): ViewLookups } {
  const workloads = new Map<string, RecordedWorkload>();
  let nodes: readonly NodeInfo[] | undefined;
  const watched: ClusterView = {
    workload(group, kind, namespace, name) {
      const found = view.workload(group, kind, namespace, name);
      if (found) workloads.set(keyOf(group, kind, namespace, name), { ref: { ...found.ref, group, kind, namespace, name }, count: found.count });
      return found;
    },
    nodes() {
      nodes = view.nodes();
      return nodes;
    },
    isGone: (uid) => view.isGone(uid),
    staleness: (nowMs) => view.staleness(nowMs),
    workloadByUid: (uid) => view.workloadByUid(uid),
    runningAs: (sa) => view.runningAs(sa),
    withFingerprint: (key) => view.withFingerprint(key),
    scalerOf: (ref) => view.scalerOf(ref),
    family: (query) => view.family(query),
  };
  return { view: watched, lookups: () => ({ workloads: [...workloads.values()], nodes }) };
}

/**
 * A view that answers an interpretation from recorded lookups: the same workloads and
 * nodes the webhook saw, nothing else. Families come from the recorded facts, so the
 * family lookups find nothing.
 */
export class RecordedView implements ClusterView {
  readonly #workloads = new Map<string, WorkloadSnapshot>();
  readonly #nodes: readonly NodeInfo[] | undefined;

  constructor(lookups: ViewLookups) {
    for (const w of lookups.workloads) {
      this.#workloads.set(keyOf(w.ref.group, w.ref.kind, w.ref.namespace, w.ref.name), {
        ref: w.ref,
        count: w.count,
        serviceAccounts: [],
        fingerprints: [],
      });
    }
    this.#nodes = lookups.nodes;
  }

  workload(group: string, kind: string, namespace: string, name: string): WorkloadSnapshot | undefined {
    return this.#workloads.get(keyOf(group, kind, namespace, name));
  }

  nodes(): readonly NodeInfo[] | undefined {
    return this.#nodes;
  }

  isGone(): boolean {
    return false;
  }

  staleness(): number {
    return 0;
  }

  workloadByUid(): WorkloadSnapshot | undefined {
    return undefined;
  }

  runningAs(): Iterable<WorkloadSnapshot> {
    return [];
  }

  withFingerprint(): Iterable<WorkloadSnapshot> {
    return [];
  }

  scalerOf(): WorkloadSnapshot | undefined {
    return undefined;
  }

  family(): FamilyTally {
    return NO_FAMILY;
  }
}

/** The family of a view that finds no workloads. */
const NO_FAMILY: FamilyTally = {
  workloads: 0,
  potential: 0,
  clonedMember: () => undefined,
  members: () => [],
};
