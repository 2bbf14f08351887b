import { bucketInWindow, keepSame, keepSince, msOf } from './collection-helpers.ts';
import { expireEpisodeKeys } from './episode-keys.ts';
import { expireLeases } from './leases.ts';
import { type LedgerLimits, maxWindowOf } from './limits.ts';
import { expireRisk } from './risk-buckets.ts';
import type { AgentLedgerState } from './state.ts';

/**
 * Drops what time has made irrelevant: held requests and episode keys past the metrics
 * window, rate and loss buckets and loss records past the longest window in use, and
 * reservations past their timeout (released: the view never showed them). Provenance
 * does not expire with time: a workload stays in the family while it exists; use
 * `forgetProvenance` when the view sees it deleted.
 */
export function expire(input: AgentLedgerState, now: Date, limits: LedgerLimits): AgentLedgerState {
  // Leases first: an expired one is charged to the rate, whose buckets are expired below.
  const state = expireLeases(input, now, limits);
  const t = msOf(now);
  const cutoff = t - limits.windowMs;
  const longCutoff = t - maxWindowOf(limits);
  const held = keepSince(state.held, cutoff);
  const episodeKeys = expireEpisodeKeys(state.episodeKeys, cutoff);
  const reservations = keepSame(state.reservations, (r) => r.expiresAt > t);
  const rate = keepSame(state.rate, (b) => bucketInWindow(b, longCutoff));
  const losses = keepSince(state.losses, longCutoff);
  const lossBuckets = keepSame(state.lossBuckets, (b) => bucketInWindow(b, longCutoff));
  const expired = expireRisk(state, cutoff);
  if (
    held === state.held &&
    episodeKeys === state.episodeKeys &&
    reservations === state.reservations &&
    rate === state.rate &&
    losses === state.losses &&
    lossBuckets === state.lossBuckets &&
    expired === state
  ) {
    return state;
  }
  return { ...expired, held, episodeKeys, reservations, rate, losses, lossBuckets };
}
