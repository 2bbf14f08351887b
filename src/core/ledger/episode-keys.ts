import { CarriedIndex } from '../carried-index.ts';
import { appendCapped, bump, keepSince, msOf } from './collection-helpers.ts';
import { compactId } from './compact-id.ts';
import { boundsOf, type LedgerLimits } from './limits.ts';
import { type Fields, isId, isTime } from './read-fields.ts';
import type { AgentLedgerState, EpisodeKeyEntry } from './state.ts';

/** Episode keys by key: every decision looks one up among up to a thousand. */
const episodeKeyIndex = new CarriedIndex<EpisodeKeyEntry>((e) => e.key);

/**
 * Records an episode key once within the window. `isNew` is false for the mutating call's
 * twin, a reinvocation, the apiserver's retries and an agent's retry loop. Past the bound
 * the oldest key is dropped and counted: the same episode seen again then counts twice.
 */
export function recordEpisodeKey(
  state: AgentLedgerState,
  key: string,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly isNew: boolean } {
  const k = compactId(key);
  const t = msOf(now);
  const cutoff = t - limits.windowMs;
  const existing = episodeKeyIndex.get(state.episodeKeys, k);
  if (existing && existing.at >= cutoff) return { state, isNew: false };
  const rest = existing ? state.episodeKeys.filter((e) => e !== existing) : state.episodeKeys;
  const entry = { key: k, at: t };
  const { kept, evicted } = appendCapped(rest, entry, boundsOf(limits).episodeKeys, (e) => e.at >= cutoff);
  const dropped = rest.slice(0, rest.length + 1 - kept.length);
  episodeKeyIndex.carry(state.episodeKeys, kept, existing ? [existing, ...dropped] : dropped, [entry]);
  return { state: { ...state, episodeKeys: kept, evictions: bump(state.evictions, 'episodeKeys', evicted) }, isNew: true };
}

/** Whether the key was recorded within the window. */
export function hasEpisodeKey(state: AgentLedgerState, key: string, now: Date, limits: LedgerLimits): boolean {
  const k = compactId(key);
  const cutoff = msOf(now) - limits.windowMs;
  const entry = episodeKeyIndex.get(state.episodeKeys, k);
  return entry !== undefined && entry.at >= cutoff;
}

/**
 * The keys recorded at or after `cutoff`. Goes through here rather than a plain filter so
 * that the lookup index follows the kept keys instead of being rebuilt on the next decision.
 */
export function expireEpisodeKeys(keys: readonly EpisodeKeyEntry[], cutoff: number): readonly EpisodeKeyEntry[] {
  const kept = keepSince(keys, cutoff);
  if (kept !== keys) {
    episodeKeyIndex.carry(keys, kept, keys.filter((e) => e.at < cutoff), []);
  }
  return kept;
}

/** An episode key read from a serialised state, or undefined when it is not one. */
export function readEpisodeKey(v: Fields): EpisodeKeyEntry | undefined {
  return isId(v.key) && isTime(v.at) ? { key: v.key, at: v.at } : undefined;
}
