import type { WorkloadChange } from './types.ts';

/**
 * One growth request by an agent (DESIGN.md "episode"), as the ledger keeps it. The
 * requested count is the agent's own, before any clamp.
 */
export interface Episode {
  readonly key: string;
  readonly agent: string;
  readonly policy: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly from: number;
  readonly requested: number;
  /** What passed the guard: `from` when denied, the clamped value when clamped. */
  readonly admitted: number;
  /** The need the decision used; null when judged by caps alone. */
  readonly need: number | null;
  /** False when the kind had no load signal and no static need: outside OR and AOC. */
  readonly measured: boolean;
  /** True when the need was a stand-in (`onUnavailable`): kept out of OR. */
  readonly fallback: boolean;
  readonly verdict: 'allowed' | 'denied' | 'clamped';
  readonly at: Date;
}

/** Where an episode's workload is keyed: its UID once it exists, else kind/namespace/name. */
export function workloadKeyOf(change: WorkloadChange): string {
  const r = change.ref;
  if (change.operation !== 'CREATE' && r.uid) return r.uid;
  return `${r.group}/${r.kind}/${r.namespace}/${r.name}`;
}

/**
 * The episode key of DESIGN.md: (agent, workload, from, to). The mutating call, a
 * reinvocation, the apiserver's retries and an agent's retry loop all map to it, while
 * resourceVersion, request uid and call order do not enter it.
 */
export function episodeKey(agent: string, change: WorkloadChange, from: number, to: number): string {
  return JSON.stringify([agent, workloadKeyOf(change), from, to]);
}
