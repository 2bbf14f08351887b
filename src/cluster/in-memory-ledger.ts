import { type AgentLedgerState, DEFAULT_LEDGER_LIMITS, emptyState, isEmptyState, type LedgerLimits } from '../core/ledger-state.ts';
import { countEvictions, type LedgerMetrics, type LedgerStep, TransactionalLedger } from './ledger.ts';

/** Options of the in-memory ledger. */
export interface InMemoryLedgerOptions {
  /** How long an episode key and a held request are remembered (the metrics window). */
  readonly windowMs: number;
  /** At most this many full episode records are kept in memory; the oldest are evicted first. */
  readonly maxEpisodes: number;
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
 * shared ledger, in a Map by agent. A step is pure and synchronous, so it runs at once,
 * inside `transact`: transactions apply in arrival order and none can interleave with
 * another, which is the shared ledger's contract without its queue (a promise chain per
 * agent cost the request path three promises and bought nothing here).
 */
export class InMemoryLedger extends TransactionalLedger {
  readonly #states = new Map<string, AgentLedgerState>();
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
      else this.#states.set(agent, next);
      countEvictions(this.#metrics, state, next);
    }
    return result;
  }
}
