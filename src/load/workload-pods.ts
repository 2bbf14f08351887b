import type { WorkloadRef } from '../core/types.ts';

/** One running pod of a workload, as its spec states it. */
export interface WorkloadPod {
  readonly name: string;
  /**
   * The pod's CPU request in cores, summed over its containers; undefined when a container
   * has none (utilisation against requests is then undefined, as for the HPA).
   */
  readonly cpuRequestCores: number | undefined;
}

/** The pods a workload runs now and the selector that finds their metrics. */
export interface WorkloadPods {
  readonly namespace: string;
  /**
   * The workload's selector in the API's `labelSelector` form (`app=web,tier in (a,b)`), to
   * narrow the metrics list; `''` (the whole namespace) for a workload without one. Usage
   * is matched to {@link pods} by pod name, so a wider list costs bytes, never accuracy.
   */
  readonly labelSelector: string;
  /** Its running pods (not terminating, not failed or succeeded), owned by the workload. */
  readonly pods: readonly WorkloadPod[];
}

/**
 * Where the metrics-api source learns a workload's pods and their CPU requests. The
 * cluster view (KubeView) implements it from its pod cache; it answers synchronously from
 * memory, and undefined when it does not know the workload (not synced yet, or too stale
 * to trust).
 */
export interface WorkloadPodsReader {
  podsOf(ref: WorkloadRef): WorkloadPods | undefined;
}

function keyOf(ref: Pick<WorkloadRef, 'group' | 'kind' | 'namespace' | 'name'>): string {
  return `${ref.group}/${ref.kind}/${ref.namespace}/${ref.name}`;
}

/** A {@link WorkloadPodsReader} told its facts directly: for tests and configuration. */
export class InMemoryWorkloadPods implements WorkloadPodsReader {
  readonly #byWorkload = new Map<string, WorkloadPods>();

  set(ref: Pick<WorkloadRef, 'group' | 'kind' | 'namespace' | 'name'>, pods: Omit<WorkloadPods, 'namespace'>): void {
    this.#byWorkload.set(keyOf(ref), { namespace: ref.namespace, ...pods });
  }

  delete(ref: Pick<WorkloadRef, 'group' | 'kind' | 'namespace' | 'name'>): void {
    this.#byWorkload.delete(keyOf(ref));
  }

  podsOf(ref: WorkloadRef): WorkloadPods | undefined {
    return this.#byWorkload.get(keyOf(ref));
  }
}
