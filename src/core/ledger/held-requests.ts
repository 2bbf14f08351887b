import { appendCapped, bump, msOf } from './collection-helpers.ts';
import { compactId } from './compact-id.ts';
import { boundsOf, count, type LedgerLimits } from './limits.ts';
import { type Fields, isCount, isId, isTime } from './read-fields.ts';
import type { AgentLedgerState, HeldRequest } from './state.ts';

/**
 * Keeps the agent's requested count under the episode key, unless one is already kept
 * within the window: a reinvocation of the mutating webhook sees the count it clamped
 * and must never overwrite the agent's own.
 */
export function holdRequested(
  state: AgentLedgerState,
  key: string,
  requested: number,
  now: Date,
  limits: LedgerLimits,
): AgentLedgerState {
  const k = compactId(key);
  const t = msOf(now);
  const cutoff = t - limits.windowMs;
  const existing = state.held.find((h) => h.key === k);
  if (existing && existing.at >= cutoff) return state;
  const rest = existing ? state.held.filter((h) => h !== existing) : state.held;
  const { kept, evicted } = appendCapped(
    rest,
    { key: k, requested: count(requested, 'requested'), at: t },
    boundsOf(limits).held,
    (h) => h.at >= cutoff,
  );
  return { ...state, held: kept, evictions: bump(state.evictions, 'held', evicted) };
}

/** The requested count held under the key within the window, if any. */
export function requestedFor(state: AgentLedgerState, key: string, now: Date, limits: LedgerLimits): number | undefined {
  const k = compactId(key);
  const cutoff = msOf(now) - limits.windowMs;
  const h = state.held.find((e) => e.key === k);
  return h && h.at >= cutoff ? h.requested : undefined;
}

/** A held request read from a serialised state, or undefined when it is not one. */
export function readHeldRequest(v: Fields): HeldRequest | undefined {
  return isId(v.key) && isCount(v.requested) && isTime(v.at) ? { key: v.key, requested: v.requested, at: v.at } : undefined;
}
