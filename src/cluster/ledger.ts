import type { Episode } from '../core/episode.ts';

/**
 * What decisions share beyond the cluster itself: the agent's requested counts held by
 * the mutating call for the validating one, and the episodes. The embedded default keeps
 * it in memory; a shared implementation keeps it in the Kubernetes API so that every
 * replica sees the same. Dry-run requests never reach it.
 */
export interface Ledger {
  /** Keeps the agent's requested count under the episode key, unless one is already kept (a reinvocation). */
  holdRequested(key: string, requested: number, now: Date): Promise<void>;
  /** The requested count kept under the key by the mutating call, if any. */
  requested(key: string, now: Date): Promise<number | undefined>;
  /** Records the episode once per key within the window; false when the key was already recorded. */
  recordEpisode(episode: Episode): Promise<boolean>;
  /** Episodes of the agent recorded at or after `since`, oldest first. */
  episodes(agent: string, since: Date): Promise<readonly Episode[]>;
}
