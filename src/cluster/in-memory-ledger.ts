import { type AgentLedgerState, DEFAULT_LEDGER_LIMITS, emptyState, isEmptyState, type LedgerLimits } from '../core/ledger-state.ts';
import { countEvictions, type LedgerMetrics, type LedgerStep, TransactionalLedger } from './ledger.ts';
import { LruMap } from './lru-map.ts';

/**
 * Agents whose state the in-memory ledger keeps by default. Far above the agents one
 * cluster runs, so that normal use never evicts; a state is a few KiB (see BENCHMARKS.md),
 * so the bound caps the ledger at tens of MiB whatever number of identities writes.
 */
export const DEFAULT_MAX_AGENTS = 10_000;

/** Options of the in-memory ledger. */
export interface InMemoryLedgerOptions {
  /** How long an episode key and a held request are remembered (the metrics window). */
  readonly windowMs: number;
  /** At most this many full episode records are kept in memory (0: none); the oldest are evicted first. */
  readonly maxEpisodes: number;
  /**
   * At most this many agents' states are kept (default {@link DEFAULT_MAX_AGENTS}); the least
   * recently used goes first, and with it that agent's rate window, episode keys,
   * provenance, reservations and risk buckets.
   */
  readonly maxAgents?: number | undefined;
  /** The longest rate or pressure window in use (default: the 24 h maximum). */
  readonly maxWindowMs?: number | undefined;
  /** How long admitted growth waits for the view to confirm it (default 2 min). */
  readonly reservationTtlMs?: number | undefined;
  /** Lower collection caps, for tests. */
  readonly bounds?: LedgerLimits['bounds'];
  readonly metrics?: LedgerMetrics | undefined;
}

/**
 * The ledger of a single process (the embedded default): the same pure state as the
 * shared ledger, by agent, for at most `maxAgents` agents (least recently used out). A step is pure and synchronous, so it runs at once,
 * inside `transact`: transactions apply in arrival order and none can interleave with
 * another, which is the shared ledger's contract without its queue (a promise chain per
 * agent cost the request path three promises and bought nothing here).
 */
export class InMemoryLedger extends TransactionalLedger {
  readonly #states: LruMap<AgentLedgerState>;
  readonly #metrics: LedgerMetrics | undefined;

  constructor(options: InMemoryLedgerOptions) {
    super(
      {
        windowMs: options.windowMs,
        maxWindowMs: options.maxWindowMs ?? DEFAULT_LEDGER_LIMITS.maxWindowMs,
        reservationTtlMs: options.reservationTtlMs ?? DEFAULT_LEDGER_LIMITS.reservationTtlMs,
        bounds: options.bounds,
      },
      { maxEpisodes: options.maxEpisodes, metrics: options.metrics },
    );
    this.#metrics = options.metrics;
    this.#states = new LruMap(options.maxAgents ?? DEFAULT_MAX_AGENTS);
  }

  /** The bound on agents' states kept. */
  get maxAgents(): number {
    return this.#states.max;
  }

  /** Agents whose state is in memory now. */
  get agents(): number {
    return this.#states.size;
  }

  /** Agents' states dropped for the `maxAgents` bound since this ledger was made. */
  get evictedAgents(): number {
    return this.#states.evictions;
  }

  transact<T>(agent: string, step: LedgerStep<T>): Promise<T> {
    try {
      return Promise.resolve(this.#apply(agent, step));
    } catch (err) {
      // A step that throws fails its caller only; nothing it computed is kept.
      return Promise.reject(err);
    }
  }

  #apply<T>(agent: string, step: LedgerStep<T>): T {
    const state = this.#states.get(agent) ?? emptyState();
    const { result, next } = step(state);
    if (next !== undefined && next !== state) {
      if (isEmptyState(next)) this.#states.delete(agent);
      else if (this.#states.set(agent, next) !== undefined) this.#metrics?.evictions.inc({ collection: 'agents' });
      countEvictions(this.#metrics, state, next);
    }
    return result;
  }
}
