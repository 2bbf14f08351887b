import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Clock } from '../clock.ts';

/** The load sources a policy can name, as they appear in metrics, logs and need sources. */
export type LoadSourceName = 'prometheus' | 'metrics-api' | 'hpa';

/**
 * Why a lookup did not yield a load. A closed set, so that the error counter's series stay
 * bounded whatever the sources answer:
 * - `unreachable`: no connection (refused, DNS, reset);
 * - `timeout`: no answer within the source's deadline (or every caller's deadline passed);
 * - `http`: an HTTP error status;
 * - `query`: the query itself is at fault (PromQL Prometheus refuses, a bad template);
 * - `bad_response`: an answer that is not a single finite non-negative load;
 * - `no_series`: the query matched nothing (counted, but answered with `need.min`);
 * - `not_configured`: the policy names a source this guard was not given;
 * - `unknown_workload`: the guard does not know the workload's pods or its HPA target yet;
 * - `no_target`: no HPA targets the workload;
 * - `untrusted`: the HPA can be written by the agent's family;
 * - `no_metrics`: metrics.k8s.io has no usage for any of the workload's pods;
 * - `no_requests`: a pod without a CPU request (utilisation against requests is undefined).
 */
export type LoadFailureReason =
  | 'unreachable'
  | 'timeout'
  | 'http'
  | 'query'
  | 'bad_response'
  | 'no_series'
  | 'not_configured'
  | 'unknown_workload'
  | 'no_target'
  | 'untrusted'
  | 'no_metrics'
  | 'no_requests';

/** A failed lookup: the reason class (a metric label) and the reason in words (for logs and denials). */
export interface LoadFailure {
  readonly reason: LoadFailureReason;
  readonly detail: string;
}

/** `replica_guard_load_source_errors_total{source, reason}`, created by the caller on its registry. */
export type LoadErrorCounter = Counter<'source' | 'reason'>;

/** What every load source is given to report failures. */
export interface LoadFailureReporterOptions {
  readonly errors: LoadErrorCounter;
  readonly logger: Logger;
  readonly clock: Clock;
  /** A source and reason class is logged at most once per interval (default 60 s). */
  readonly logIntervalMs?: number | undefined;
}

export const DEFAULT_LOG_INTERVAL_MS = 60_000;

/** Reasons that mean the source itself is out, as opposed to one query or workload. */
const OUTAGES: ReadonlySet<LoadFailureReason> = new Set(['unreachable', 'timeout', 'http']);

interface LogState {
  lastLoggedMs: number;
  suppressed: number;
}

/**
 * Counts every failed lookup and logs it at most once per interval per source and reason
 * class. A source that is down fails for every request that reaches the guard: logging each
 * one would bury the logs (and cost more than the decision), while the counter keeps the
 * exact number. The first line after a quiet interval says how many were not logged.
 */
export class LoadFailureReporter {
  readonly #errors: LoadErrorCounter;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #state = new Map<string, LogState>();
  /** Sources with an outage logged since they last answered. */
  readonly #failing = new Set<LoadSourceName>();

  constructor(options: LoadFailureReporterOptions) {
    this.#errors = options.errors;
    this.#logger = options.logger;
    this.#clock = options.clock;
    this.#intervalMs = options.logIntervalMs ?? DEFAULT_LOG_INTERVAL_MS;
  }

  /** Counts one failed lookup and logs it unless the same class was logged within the interval. */
  failed(source: LoadSourceName, failure: LoadFailure): void {
    this.#errors.inc({ source, reason: failure.reason });
    const key = `${source}\u0000${failure.reason}`;
    const now = this.#clock.monotonicMs();
    const state = this.#state.get(key);
    if (state !== undefined && now - state.lastLoggedMs < this.#intervalMs) {
      state.suppressed += 1;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.#state.set(key, { lastLoggedMs: now, suppressed: 0 });
    const fields = { source, reason: failure.reason, detail: failure.detail, suppressed };
    if (failure.reason === 'no_series') {
      // Expected for a new workload; a query that never matches anything is a policy bug
      // worth one line, not an outage.
      this.#logger.info(fields, `load source ${source} found no series; need.min applies`);
      return;
    }
    if (OUTAGES.has(failure.reason)) this.#failing.add(source);
    this.#logger.warn(fields, `load source ${source} failed (${failure.reason}); the policy's onUnavailable decides meanwhile`);
  }

  /** Notes a good answer: logs once that a source whose outage was logged answers again. */
  answered(source: LoadSourceName): void {
    if (!this.#failing.delete(source)) return;
    this.#logger.info({ source }, `load source ${source} answers again`);
  }
}
