import { needByHpaRule } from '../core/need-rule.ts';
import type { NeedFact, WorkloadRef } from '../core/types.ts';
import { LoadFailureReporter, type LoadFailureReporterOptions } from './load-failures.ts';
import type { LoadSource, NeedQuery } from './load-source.ts';
import type { PodCpuUsage, PodMetricsReader, PodMetricsResult } from './pod-metrics-reader.ts';
import { ShortCache } from './short-cache.ts';
import type { WorkloadPod, WorkloadPodsReader } from './workload-pods.ts';

export interface MetricsApiLoadSourceOptions extends LoadFailureReporterOptions {
  readonly metrics: PodMetricsReader;
  readonly pods: WorkloadPodsReader;
  /** How long a usage list is reused (default 5 s; metrics-server resolves every 15 s or so). */
  readonly cacheTtlMs?: number | undefined;
  /** How long a failure is reused (default 1 s). */
  readonly failureTtlMs?: number | undefined;
  readonly maxCacheEntries?: number | undefined;
}

/** What the utilisation of a workload's pods comes to. */
export type CpuUtilization =
  | { readonly kind: 'ratio'; readonly ratio: number; readonly utilizationPercent: number }
  | { readonly kind: 'no-metrics'; readonly pods: number };

/**
 * The usage ratio the HPA computes for a CPU utilisation target: the pods' summed usage
 * over their summed requests, in percent, over the target. Pods without metrics yet (just
 * started, or missed by metrics-server) are counted the HPA's conservative way: at 100% of
 * their request when the others suggest scaling down, at 0% when they suggest scaling up,
 * and when that reverses the direction the ratio is 1 (keep the count). Pure.
 */
export function cpuUtilizationRatio(
  pods: readonly WorkloadPod[],
  usage: readonly PodCpuUsage[],
  targetPercent: number,
): CpuUtilization {
  const usageByPod = new Map(usage.map((u) => [u.name, u.cpuCores]));
  let used = 0;
  let requested = 0;
  let missingRequested = 0;
  let measured = 0;
  for (const pod of pods) {
    const request = pod.cpuRequestCores ?? 0;
    const cores = usageByPod.get(pod.name);
    if (cores === undefined) {
      missingRequested += request;
      continue;
    }
    measured += 1;
    used += cores;
    requested += request;
  }
  if (measured === 0 || requested <= 0) return { kind: 'no-metrics', pods: pods.length };
  const utilizationPercent = (used / requested) * 100;
  const ratio = utilizationPercent / targetPercent;
  if (missingRequested === 0 || ratio === 1) return { kind: 'ratio', ratio, utilizationPercent };
  const assumed = ratio < 1 ? missingRequested : 0;
  const adjustedPercent = ((used + assumed) / (requested + missingRequested)) * 100;
  const adjusted = adjustedPercent / targetPercent;
  if ((ratio < 1 && adjusted >= 1) || (ratio > 1 && adjusted <= 1)) {
    return { kind: 'ratio', ratio: 1, utilizationPercent: adjustedPercent };
  }
  return { kind: 'ratio', ratio: adjusted, utilizationPercent: adjustedPercent };
}

/**
 * The need from the average CPU utilisation of the workload's pods (metrics.k8s.io)
 * against `need.metricsApi.targetCpuUtilization`, by the HPA rule: ceil(current × ratio)
 * outside the 10% band. A workload without pods yet gets `need.min`. A pod without a CPU
 * request, no metrics for any pod, or the metrics API failing is `unavailable`. Never rejects.
 */
export class MetricsApiLoadSource implements LoadSource {
  readonly #metrics: PodMetricsReader;
  readonly #pods: WorkloadPodsReader;
  readonly #cacheTtlMs: number;
  readonly #failureTtlMs: number;
  readonly #cache: ShortCache<PodMetricsResult>;
  readonly #reporter: LoadFailureReporter;

  constructor(options: MetricsApiLoadSourceOptions) {
    this.#metrics = options.metrics;
    this.#pods = options.pods;
    this.#cacheTtlMs = options.cacheTtlMs ?? 5_000;
    this.#failureTtlMs = options.failureTtlMs ?? 1_000;
    this.#cache = new ShortCache({ clock: options.clock, maxEntries: options.maxCacheEntries });
    this.#reporter = new LoadFailureReporter(options);
  }

  async need(query: NeedQuery, signal: AbortSignal): Promise<NeedFact> {
    try {
      return await this.#need(query, signal);
    } catch (error) {
      const detail = `metrics API lookup failed: ${String(error)}`;
      this.#reporter.failed('metrics-api', { reason: 'bad_response', detail });
      return { kind: 'unavailable', reason: detail };
    }
  }

  async #need(query: NeedQuery, signal: AbortSignal): Promise<NeedFact> {
    const { policy, currentSteady: current, ref } = query;
    const spec = policy.need.metricsApi;
    if (spec === undefined) return { kind: 'unavailable', reason: `policy ${policy.name} names no need.metricsApi` };
    const min = policy.need.min;
    const max = policy.need.max;

    const workload = this.#pods.podsOf(ref);
    if (workload === undefined) {
      return this.#fail('unknown_workload', `the guard does not know the pods of ${describe(ref)} (its view is not synced or too old, or does not watch that kind)`);
    }
    if (workload.pods.length === 0) {
      this.#reporter.failed('metrics-api', { reason: 'no_series', detail: `${describe(ref)} runs no pods` });
      return { kind: 'measured', value: needByHpaRule({ current, ratio: undefined, min, max }), source: 'metrics-api:no-pods' };
    }
    const unrequested = workload.pods.find((p) => p.cpuRequestCores === undefined || p.cpuRequestCores <= 0);
    if (unrequested !== undefined) {
      return this.#fail(
        'no_requests',
        `pod ${workload.namespace}/${unrequested.name} of ${describe(ref)} has no CPU request; utilisation against requests is undefined`,
      );
    }

    const key = `${workload.namespace}\u0000${workload.labelSelector}`;
    const answer = await this.#cache.get(
      key,
      signal,
      async (lookupSignal) => {
        const result = await this.#metrics.cpuUsage(workload.namespace, workload.labelSelector, lookupSignal);
        if (result.ok) this.#reporter.answered('metrics-api');
        else this.#reporter.failed('metrics-api', result.failure);
        return result;
      },
      (r) => (r.ok ? this.#cacheTtlMs : this.#failureTtlMs),
    );
    if ('aborted' in answer) return { kind: 'unavailable', reason: 'the metrics API did not answer before the admission deadline' };
    if (!answer.value.ok) return { kind: 'unavailable', reason: answer.value.failure.detail };

    const utilization = cpuUtilizationRatio(workload.pods, answer.value.pods, spec.targetCpuUtilization);
    if (utilization.kind === 'no-metrics') {
      return this.#fail('no_metrics', `metrics.k8s.io has no CPU usage for any of the ${utilization.pods} pods of ${describe(ref)} yet`);
    }
    return {
      kind: 'measured',
      value: needByHpaRule({ current, ratio: utilization.ratio, min, max }),
      source: 'metrics-api',
    };
  }

  #fail(reason: 'unknown_workload' | 'no_requests' | 'no_metrics', detail: string): NeedFact {
    this.#reporter.failed('metrics-api', { reason, detail });
    return { kind: 'unavailable', reason: detail };
  }
}

function describe(ref: WorkloadRef): string {
  return `${ref.kind} ${ref.namespace}/${ref.name}`;
}
