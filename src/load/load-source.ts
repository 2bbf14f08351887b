import type { AgentIdentity, NeedFact, Policy, WorkloadRef } from '../core/types.ts';

/** What a load source is asked: the need of one workload under one policy. */
export interface NeedQuery {
  readonly ref: WorkloadRef;
  /** The steady count the workload has now (0 on CREATE). */
  readonly currentSteady: number;
  readonly policy: Policy;
  /** The agent asking: a source may depend on what its family can write (an HPA it controls). */
  readonly agent?: AgentIdentity | undefined;
}

/**
 * Where the need comes from. An implementation must answer within the signal's
 * deadline and turn every failure into `{ kind: 'unavailable' }`, never a rejection:
 * the policy's `onUnavailable` decides what that means.
 */
export interface LoadSource {
  need(query: NeedQuery, signal: AbortSignal): Promise<NeedFact>;
}
