import { msOf } from './collection-helpers.ts';
import { isObject, isTime } from './read-fields.ts';
import type { AgentLedgerState, JustificationRecord } from './state.ts';

/** Records the hash of the justification a growth carried (the same object when it is already the latest). */
export function recordJustification(state: AgentLedgerState, hash: string, now: Date): AgentLedgerState {
  if (state.justification?.hash === hash) return state;
  return { ...state, justification: { hash, at: msOf(now) } };
}

/** The justification field of a serialised state; an unreadable one is reported and read as none. */
export function readJustification(v: unknown, problems: string[]): { justification?: JustificationRecord } {
  if (v === undefined) return {};
  if (isObject(v) && typeof v.hash === 'string' && /^[0-9a-f]{1,64}$/.test(v.hash) && isTime(v.at)) return { justification: { hash: v.hash, at: v.at } };
  problems.push('justification: unreadable; ignored');
  return {};
}
