import { hasProvenance } from '../core/ledger-state.ts';
import type { WorkloadRef } from '../core/types.ts';
import { HpaLoadSource } from '../load/hpa-load-source.ts';
import type { LoadFailureReporterOptions } from '../load/load-failures.ts';
import { MetricsApiLoadSource } from '../load/metrics-api-load-source.ts';
import { HttpPodMetricsReader } from '../load/pod-metrics-reader.ts';
import type { WorkloadPodsReader } from '../load/workload-pods.ts';
import { SubjectAccessReviews } from './access-review.ts';
import type { KubeConnection } from './kube-http.ts';
import type { ViewAutoscaler } from './kube-view.ts';
import type { Ledger } from './ledger.ts';
import { ViewHpaReader } from './view-hpa-reader.ts';

export interface ClusterLoadSourcesOptions extends LoadFailureReporterOptions {
  /** The connection the view and the ledger use: metrics.k8s.io and SubjectAccessReviews go through the same apiserver. */
  readonly connection: KubeConnection;
  /** The cluster view: the workloads' pods and the HPAs targeting them (KubeView). */
  readonly view: WorkloadPodsReader & { autoscalerOf(ref: WorkloadRef): ViewAutoscaler | null | undefined };
  /** The ledger whose provenance says which HPAs an agent created or changed through the guard. */
  readonly ledger: Pick<Ledger, 'transact'>;
  readonly metricsApi?: { readonly timeoutMs?: number; readonly cacheTtlMs?: number; readonly failureTtlMs?: number } | undefined;
  readonly accessReviews?: { readonly ttlMs?: number; readonly timeoutMs?: number } | undefined;
}

/** The load sources only a cluster can feed. */
export interface ClusterLoadSources {
  readonly metricsApi: MetricsApiLoadSource;
  readonly hpa: HpaLoadSource;
}

/**
 * The metrics-api and hpa load sources of a guard running against a cluster: PodMetrics
 * listed through the apiserver's aggregation layer for the view's pods of a workload, and
 * the view's HPAs, trusted only when neither the ledger's provenance nor a
 * SubjectAccessReview says the agent can write them. The embedded default has neither a
 * metrics API nor a view of HPAs, so there such policies fall back to `onUnavailable`.
 */
export function clusterLoadSources(options: ClusterLoadSourcesOptions): ClusterLoadSources {
  const { connection, view, ledger } = options;
  const reporting: LoadFailureReporterOptions = {
    errors: options.errors,
    logger: options.logger,
    clock: options.clock,
    logIntervalMs: options.logIntervalMs,
  };
  const metricsApi = new MetricsApiLoadSource({
    metrics: new HttpPodMetricsReader({ connection, timeoutMs: options.metricsApi?.timeoutMs }),
    pods: view,
    cacheTtlMs: options.metricsApi?.cacheTtlMs,
    failureTtlMs: options.metricsApi?.failureTtlMs,
    ...reporting,
  });
  const access = new SubjectAccessReviews({
    connection,
    clock: options.clock,
    logger: options.logger,
    ttlMs: options.accessReviews?.ttlMs,
    timeoutMs: options.accessReviews?.timeoutMs,
    logIntervalMs: options.logIntervalMs,
  });
  const hpas = new ViewHpaReader({
    view,
    access,
    // A read-only transaction: one GET of the agent's ledger, batched with its other
    // transactions in flight, never a write.
    provenance: (agent, uid) => ledger.transact(agent.username, (state) => ({ result: hasProvenance(state, uid), next: undefined })),
  });
  return { metricsApi, hpa: new HpaLoadSource({ hpas, ...reporting }) };
}
