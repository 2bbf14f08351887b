import type { NodeInfo } from '../admission/node-eligibility.ts';
import type { FamilyLookups, FamilyTally } from '../core/family.ts';
import type { WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import type { FamilyQuery } from './family-aggregates.ts';

export type { WorkloadSnapshot } from '../core/types.ts';

/**
 * A narrow, synchronous read interface over the cluster state the guard keeps in memory.
 * Synchronous on purpose: lookups happen on the request path and must never wait on the
 * network; a list/watch-backed implementation answers from its cache.
 */
export interface ClusterView extends FamilyLookups {
  /** The workload with this group, kind, namespace and name, if the view has it. */
  workload(group: string, kind: string, namespace: string, name: string): WorkloadSnapshot | undefined;
  /**
   * True when the view saw the workload with this UID deleted (recently: a bounded
   * memory). UIDs are never reused, so a gone UID's provenance can be forgotten. False
   * says nothing: the view may not have seen the object yet, or forgot the deletion.
   */
  isGone(uid: string): boolean;
  /**
   * The agent's family: what {@link familyOf} computes over the lookups, read from
   * aggregates the view keeps up to date as it changes (family-aggregates.ts), so that
   * its cost does not grow with the family.
   */
  family(query: FamilyQuery): FamilyTally;
  /** The cluster's nodes, or undefined when they are not known. */
  nodes(): readonly NodeInfo[] | undefined;
  /**
   * How old the view's facts are, in milliseconds, at `nowMs` (a monotonic reading):
   * 0 for a view that is always current, undefined before the first full sync.
   */
  staleness(nowMs: number): number | undefined;
}

/** A view that learns from the admitted requests themselves (the embedded default). */
export interface ObservingClusterView extends ClusterView {
  /** Records what an admitted write leaves in the cluster; `null` removes it. */
  observe(ref: WorkloadRef, snapshot: WorkloadSnapshot | null): void;
}
