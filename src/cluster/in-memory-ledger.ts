import type { Episode } from '../core/episode.ts';
import type { Ledger } from './ledger.ts';

/** Options of the in-memory ledger. */
export interface InMemoryLedgerOptions {
  /** How long an episode key and a held request are remembered (the metrics window). */
  readonly windowMs: number;
  /** At most this many episodes are kept; the oldest are evicted first. */
  readonly maxEpisodes: number;
}

/**
 * The ledger of a single process (the embedded default). Bounded: entries older than
 * the window are dropped, and past `maxEpisodes` the oldest go first (counted in
 * `evictions`). Insertion order of a Map is the recording order, which keeps that cheap.
 */
export class InMemoryLedger implements Ledger {
  readonly #options: InMemoryLedgerOptions;
  readonly #held = new Map<string, { requested: number; at: number }>();
  readonly #episodes = new Map<string, Episode>();
  #evictions = 0;

  constructor(options: InMemoryLedgerOptions) {
    this.#options = options;
  }

  /** Episodes dropped to stay within `maxEpisodes` before the window ended. */
  get evictions(): number {
    return this.#evictions;
  }

  async holdRequested(key: string, requested: number, now: Date): Promise<void> {
    this.#expire(now.getTime());
    if (!this.#held.has(key)) this.#held.set(key, { requested, at: now.getTime() });
  }

  async requested(key: string, now: Date): Promise<number | undefined> {
    this.#expire(now.getTime());
    return this.#held.get(key)?.requested;
  }

  async recordEpisode(episode: Episode): Promise<boolean> {
    this.#expire(episode.at.getTime());
    if (this.#episodes.has(episode.key)) return false;
    this.#episodes.set(episode.key, episode);
    while (this.#episodes.size > this.#options.maxEpisodes) {
      const oldest = this.#episodes.keys().next();
      if (oldest.done) break;
      this.#episodes.delete(oldest.value);
      this.#evictions++;
    }
    return true;
  }

  async episodes(agent: string, since: Date): Promise<readonly Episode[]> {
    const out: Episode[] = [];
    for (const e of this.#episodes.values()) if (e.agent === agent && e.at >= since) out.push(e);
    return out;
  }

  #expire(now: number): void {
    const cutoff = now - this.#options.windowMs;
    for (const [key, e] of this.#episodes) {
      if (e.at.getTime() >= cutoff) break;
      this.#episodes.delete(key);
    }
    for (const [key, h] of this.#held) {
      if (h.at >= cutoff) break;
      this.#held.delete(key);
    }
  }
}
