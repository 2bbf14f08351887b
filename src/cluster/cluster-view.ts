import type { NodeInfo } from '../admission/node-eligibility.ts';
import type { AgentIdentity, FamilyFact, InstanceCount, WorkloadRef } from '../core/types.ts';

/** What the view knows of one workload: enough to count it and to place it in a family. */
export interface WorkloadSnapshot {
  readonly ref: WorkloadRef;
  /** Counted at the object itself; an HPA's count is its maxReplicas. */
  readonly count: InstanceCount;
  /** Service account names its pods run as. */
  readonly serviceAccounts: readonly string[];
  /** For an HPA: the workload it scales. */
  readonly scaleTarget?: { readonly group: string; readonly kind: string; readonly name: string } | undefined;
}

/**
 * A narrow, synchronous read interface over the cluster state the guard keeps in memory.
 * Synchronous on purpose: lookups happen on the request path and must never wait on the
 * network; a list/watch-backed implementation answers from its cache.
 */
export interface ClusterView {
  /** The workload with this group, kind, namespace and name, if the view has it. */
  workload(group: string, kind: string, namespace: string, name: string): WorkloadSnapshot | undefined;
  /** The cluster's nodes, or undefined when they are not known. */
  nodes(): readonly NodeInfo[] | undefined;
  /** The agent's family without the given workload; undefined when the view cannot tell. */
  family(agent: AgentIdentity, excluding: WorkloadRef): FamilyFact | undefined;
}

/** A view that learns from the admitted requests themselves (the embedded default). */
export interface ObservingClusterView extends ClusterView {
  /** Records what an agent's admitted write leaves in the cluster; `null` removes it. */
  observe(agent: AgentIdentity, ref: WorkloadRef, snapshot: WorkloadSnapshot | null): void;
}
