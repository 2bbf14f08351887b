import { appendCapped, bump, keepSame, msOf } from './collection-helpers.ts';
import { compactId } from './compact-id.ts';
import { boundsOf, type LedgerLimits } from './limits.ts';
import { type Fields, isId, isTime } from './read-fields.ts';
import type { AgentLedgerState, ProvenanceEntry } from './state.ts';

/**
 * Marks a workload (by UID) as created or scaled up by the agent, or refreshes the time it
 * was last seen. Past the bound the least recently seen is dropped and counted.
 */
export function addProvenance(state: AgentLedgerState, uid: string, now: Date, limits: LedgerLimits): AgentLedgerState {
  const id = compactId(uid);
  const t = msOf(now);
  const last = state.provenance.at(-1);
  if (last && last.uid === id && last.at >= t) return state;
  const rest = keepSame(state.provenance, (p) => p.uid !== id);
  const { kept, evicted } = appendCapped(rest, { uid: id, at: t }, boundsOf(limits).provenance, () => true);
  return { ...state, provenance: kept, evictions: bump(state.evictions, 'provenance', evicted) };
}

/** Whether the workload is in the agent's family (provenance does not expire with time). */
export function hasProvenance(state: AgentLedgerState, uid: string): boolean {
  const id = compactId(uid);
  return state.provenance.some((p) => p.uid === id);
}

/**
 * Forgets every workload the view saw deleted (`gone` answers per stored UID). A UID is
 * never reused, so a dead entry only takes the place of a live one in the bounded list:
 * an agent that creates and deletes many workloads would otherwise push its live ones
 * out of its family.
 */
export function forgetGoneProvenance(state: AgentLedgerState, gone: (uid: string) => boolean): AgentLedgerState {
  const provenance = keepSame(state.provenance, (p) => !gone(p.uid));
  return provenance === state.provenance ? state : { ...state, provenance };
}

/** Forgets a workload the view saw deleted. */
export function forgetProvenance(state: AgentLedgerState, uid: string): AgentLedgerState {
  const id = compactId(uid);
  const provenance = keepSame(state.provenance, (p) => p.uid !== id);
  return provenance === state.provenance ? state : { ...state, provenance };
}

/** A provenance entry read from a serialised state, or undefined when it is not one. */
export function readProvenance(v: Fields): ProvenanceEntry | undefined {
  return isId(v.uid) && isTime(v.at) ? { uid: v.uid, at: v.at } : undefined;
}
