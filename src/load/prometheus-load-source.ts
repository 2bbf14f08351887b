import { needByHpaRule } from '../core/need-rule.ts';
import type { NeedFact } from '../core/types.ts';
import { excerpt, lookupSignals, readBodyCapped, requestFailure } from './http-failure.ts';
import { type LoadFailure, LoadFailureReporter, type LoadFailureReporterOptions } from './load-failures.ts';
import type { LoadSource, NeedQuery } from './load-source.ts';
import { interpretQueryAnswer, type PrometheusAnswer } from './prometheus-response.ts';
import { renderQuery } from './promql-template.ts';
import { ShortCache } from './short-cache.ts';

/** The HTTP boundary: global `fetch` unless a test counts calls. */
export type FetchFunction = (input: string | URL, init: RequestInit) => Promise<Response>;

export interface PrometheusLoadSourceOptions extends LoadFailureReporterOptions {
  /** Base URL of the Prometheus HTTP API (a path prefix is kept: `http://host/prometheus/`). */
  readonly url: string;
  /** Deadline of one query, well inside the webhook's timeout (default 2 s). */
  readonly timeoutMs?: number | undefined;
  /** How long an answer is reused for the same query (default 5 s). */
  readonly cacheTtlMs?: number | undefined;
  /** How long a failure is reused, so that a source that is down is not hammered (default 1 s). */
  readonly failureTtlMs?: number | undefined;
  /** Sent with every query, e.g. `{ authorization: 'Bearer …' }`. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Queries cached at most (default 10,000). */
  readonly maxCacheEntries?: number | undefined;
  /** Largest answer read, in bytes (default 1 MiB; one sample is a few hundred). */
  readonly maxResponseBytes?: number | undefined;
  readonly fetch?: FetchFunction | undefined;
}

export const PROMETHEUS_DEFAULTS = {
  timeoutMs: 2_000,
  cacheTtlMs: 5_000,
  failureTtlMs: 1_000,
  maxResponseBytes: 1 << 20,
} as const;

/**
 * The need from an instant PromQL query of the workload's total load L, by the
 * HorizontalPodAutoscaler's rule (DESIGN.md "need"):
 * - with `targetPerInstance` t: ratio L / (current × t), and ceil(L / t) outside the 10% band;
 * - with `latencyTarget`: ratio latency / target, and ceil(current × ratio) outside the band.
 *   A weaker signal: latency stays flat until the instances saturate and then explodes,
 *   so twice the latency does not mean twice the instances. Prefer a load per instance.
 * A query that matches no series (a new workload, nothing scraped yet) gives `need.min`.
 * Anything else (Prometheus down, slow, an HTTP or PromQL error, NaN, a negative load,
 * several series, garbage) is `unavailable` with the reason, and the policy's
 * `onUnavailable` decides. Never rejects.
 */
export class PrometheusLoadSource implements LoadSource {
  readonly #endpoint: URL;
  readonly #timeoutMs: number;
  readonly #cacheTtlMs: number;
  readonly #failureTtlMs: number;
  readonly #maxResponseBytes: number;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #fetch: FetchFunction;
  readonly #cache: ShortCache<PrometheusAnswer>;
  readonly #reporter: LoadFailureReporter;

  constructor(options: PrometheusLoadSourceOptions) {
    const base = new URL(options.url);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.#endpoint = new URL('api/v1/query', base);
    this.#timeoutMs = options.timeoutMs ?? PROMETHEUS_DEFAULTS.timeoutMs;
    this.#cacheTtlMs = options.cacheTtlMs ?? PROMETHEUS_DEFAULTS.cacheTtlMs;
    this.#failureTtlMs = options.failureTtlMs ?? PROMETHEUS_DEFAULTS.failureTtlMs;
    this.#maxResponseBytes = options.maxResponseBytes ?? PROMETHEUS_DEFAULTS.maxResponseBytes;
    this.#headers = options.headers ?? {};
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#cache = new ShortCache({ clock: options.clock, maxEntries: options.maxCacheEntries });
    this.#reporter = new LoadFailureReporter(options);
  }

  /** The query endpoint, for messages. */
  get endpoint(): string {
    return this.#endpoint.href;
  }

  async need(query: NeedQuery, signal: AbortSignal): Promise<NeedFact> {
    try {
      return await this.#need(query, signal);
    } catch (error) {
      // Nothing above should throw; if it does, the policy's fallback still decides.
      const failure: LoadFailure = { reason: 'bad_response', detail: `prometheus lookup failed: ${String(error)}` };
      this.#reporter.failed('prometheus', failure);
      return { kind: 'unavailable', reason: failure.detail };
    }
  }

  async #need(query: NeedQuery, signal: AbortSignal): Promise<NeedFact> {
    const { policy, currentSteady: current, ref } = query;
    const spec = policy.need.prometheus;
    if (spec === undefined) return { kind: 'unavailable', reason: `policy ${policy.name} names no need.prometheus` };
    const rendered = renderQuery(spec.query, ref);
    if ('error' in rendered) {
      this.#reporter.failed('prometheus', { reason: 'query', detail: `policy ${policy.name}: ${rendered.error}` });
      return { kind: 'unavailable', reason: rendered.error };
    }

    const answer = await this.#cache.get(
      rendered.query,
      signal,
      (lookupSignal) => this.#lookup(rendered.query, lookupSignal),
      (a) => (a.kind === 'failed' ? this.#failureTtlMs : this.#cacheTtlMs),
    );
    if ('aborted' in answer) {
      return { kind: 'unavailable', reason: `prometheus did not answer before the admission deadline (${excerpt(rendered.query, 160)})` };
    }
    const result = answer.value;
    const min = policy.need.min;
    const max = policy.need.max;
    switch (result.kind) {
      case 'failed':
        return { kind: 'unavailable', reason: result.failure.detail };
      case 'no-series':
        return { kind: 'measured', value: needByHpaRule({ current, ratio: undefined, min, max }), source: 'prometheus:no-series' };
      case 'load': {
        const load = result.value;
        if (spec.targetPerInstance !== undefined) {
          const target = spec.targetPerInstance;
          const ratio = current > 0 ? load / (current * target) : undefined;
          const value = needByHpaRule({ current, ratio, instancesAtTarget: load / target, min, max });
          return { kind: 'measured', value, source: 'prometheus' };
        }
        if (spec.latencyTarget !== undefined) {
          const ratio = load / spec.latencyTarget;
          return { kind: 'measured', value: needByHpaRule({ current, ratio, min, max }), source: 'prometheus:latency' };
        }
        return { kind: 'unavailable', reason: `policy ${policy.name}: need.prometheus has neither targetPerInstance nor latencyTarget` };
      }
    }
  }

  /** One query, classified; counted and logged here so a burst sharing it counts once. */
  async #lookup(query: string, callerSignal: AbortSignal): Promise<PrometheusAnswer> {
    const answer = await this.#query(query, callerSignal);
    if (answer.kind === 'failed') this.#reporter.failed('prometheus', answer.failure);
    else {
      this.#reporter.answered('prometheus');
      if (answer.kind === 'no-series') {
        this.#reporter.failed('prometheus', { reason: 'no_series', detail: `no series for ${excerpt(query, 160)}` });
      }
    }
    return answer;
  }

  async #query(query: string, callerSignal: AbortSignal): Promise<PrometheusAnswer> {
    const signals = lookupSignals(callerSignal, this.#timeoutMs);
    const what = `prometheus at ${this.#endpoint.origin}`;
    // POST keeps long queries out of URLs and proxy logs. `timeout` asks Prometheus to give
    // up evaluating when we stop waiting, instead of finishing work nobody reads.
    const form = new URLSearchParams({ query, timeout: `${this.#timeoutMs}ms` });
    try {
      const res = await this.#fetch(this.#endpoint, {
        method: 'POST',
        headers: { ...this.#headers, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: signals.signal,
        redirect: 'error',
      });
      const body = await readBodyCapped(res, this.#maxResponseBytes);
      if (body === undefined) {
        return {
          kind: 'failed',
          failure: { reason: 'bad_response', detail: `prometheus answered more than ${this.#maxResponseBytes} bytes for ${excerpt(query, 160)}` },
        };
      }
      return interpretQueryAnswer(res.status, body, query);
    } catch (error) {
      return { kind: 'failed', failure: requestFailure(error, { what, signals, timeoutMs: this.#timeoutMs }) };
    }
  }
}
