import type { NeedFact, Policy } from '../core/types.ts';
import { LoadFailureReporter, type LoadSourceName, type LoadFailureReporterOptions } from './load-failures.ts';
import type { LoadSource, NeedQuery } from './load-source.ts';
import { StaticLoadSource } from './static-load-source.ts';

/**
 * Kinds whose instances carry no load signal to scale by: a Job or CronJob runs to
 * completion, a DaemonSet runs one pod per eligible node whatever the load, a bare Pod is
 * one instance. They take the policy's static need, or caps alone (unmeasured).
 */
export const KINDS_WITHOUT_LOAD_SIGNAL: ReadonlySet<string> = new Set(['Job', 'CronJob', 'DaemonSet', 'Pod']);

export interface PolicyLoadSourceOptions extends LoadFailureReporterOptions {
  /** Wired when a Prometheus URL is configured. */
  readonly prometheus?: LoadSource | undefined;
  /** Wired when the metrics API and the workloads' pods are available (a cluster view). */
  readonly metricsApi?: LoadSource | undefined;
  /** Wired when HPAs and who can write them are known (a cluster view). */
  readonly hpa?: LoadSource | undefined;
  /** The static need; {@link StaticLoadSource} unless given. */
  readonly static?: LoadSource | undefined;
}

/** The live source a policy's `need` names, if any. */
export function liveSourceOf(policy: Policy): LoadSourceName | undefined {
  const need = policy.need;
  if (need.prometheus !== undefined) return 'prometheus';
  if (need.metricsApi !== undefined) return 'metrics-api';
  if (need.hpa !== undefined) return 'hpa';
  return undefined;
}

/**
 * The load source the review handler uses: for each policy, the source its `need` names.
 * - A kind without a load signal (Job, CronJob, DaemonSet, bare Pod) takes `need.static`,
 *   or is unmeasured (judged by caps alone, its episodes outside OR and AOC).
 * - An HPA is judged at the workload it scales, so its need is that workload's: asked
 *   about the HPA object itself, a live source would query the HPA's name, so it answers
 *   `unavailable` unless the caller names the target.
 * - A policy naming a live source this guard was not given (no Prometheus URL configured,
 *   no cluster view for metrics-api or hpa) is `unavailable` with a reason saying so: the
 *   policy asked for load and does not silently get a static number instead.
 * - A policy naming none takes the static need, as before.
 */
export class PolicyLoadSource implements LoadSource {
  readonly #sources: Readonly<Record<LoadSourceName, LoadSource | undefined>>;
  readonly #static: LoadSource;
  readonly #reporter: LoadFailureReporter;

  constructor(options: PolicyLoadSourceOptions) {
    this.#sources = { prometheus: options.prometheus, 'metrics-api': options.metricsApi, hpa: options.hpa };
    this.#static = options.static ?? new StaticLoadSource();
    this.#reporter = new LoadFailureReporter(options);
  }

  async need(query: NeedQuery, signal: AbortSignal): Promise<NeedFact> {
    const live = liveSourceOf(query.policy);
    if (live === undefined || KINDS_WITHOUT_LOAD_SIGNAL.has(query.ref.kind)) return this.#static.need(query, signal);
    if (query.ref.kind === 'HorizontalPodAutoscaler') {
      const detail = `the need of HorizontalPodAutoscaler ${query.ref.namespace}/${query.ref.name} is its target's, which the query does not name`;
      this.#reporter.failed(live, { reason: 'unknown_workload', detail });
      return { kind: 'unavailable', reason: detail };
    }
    const source = this.#sources[live];
    if (source === undefined) {
      const detail = `policy ${query.policy.name} takes its need from ${live}, which this guard is not configured to reach`;
      this.#reporter.failed(live, { reason: 'not_configured', detail });
      return { kind: 'unavailable', reason: detail };
    }
    return source.need(query, signal);
  }
}
