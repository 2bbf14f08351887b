import { type KubeConnection, kubeFetch } from '../cluster/kube-http.ts';
import { excerpt, lookupSignals, readBodyCapped, requestFailure } from './http-failure.ts';
import type { LoadFailure } from './load-failures.ts';
import { parseQuantity } from './quantity.ts';

/** The CPU one pod uses now, in cores, summed over its containers. */
export interface PodCpuUsage {
  readonly name: string;
  readonly cpuCores: number;
}

/** The usage of the pods a selector finds, or why it is not known. */
export type PodMetricsResult =
  | { readonly ok: true; readonly pods: readonly PodCpuUsage[] }
  | { readonly ok: false; readonly failure: LoadFailure };

/**
 * Where the metrics-api source reads CPU usage: `metrics.k8s.io/v1beta1` PodMetrics of the
 * pods a label selector finds in a namespace. Never rejects.
 */
export interface PodMetricsReader {
  cpuUsage(namespace: string, labelSelector: string, signal: AbortSignal): Promise<PodMetricsResult>;
}

export interface HttpPodMetricsReaderOptions {
  /**
   * The API server connection the view and the ledger use (kube-http.ts): metrics.k8s.io is
   * served through the apiserver's aggregation layer, so its base URL, credentials (asked
   * for on every call: projected service-account tokens rotate) and TLS are the same.
   */
  readonly connection: KubeConnection;
  /** Deadline of one list (default 2 s). */
  readonly timeoutMs?: number | undefined;
  /** Largest answer read, in bytes (default 8 MiB). */
  readonly maxResponseBytes?: number | undefined;
}

/**
 * Lists PodMetrics over the API server connection: `GET /apis/metrics.k8s.io/v1beta1/
 * namespaces/{ns}/pods?labelSelector=...`, as the HPA controller does. metrics-server does
 * not paginate this list, so neither does the reader; the answer is bounded by the
 * workload's pods and capped in size.
 */
export class HttpPodMetricsReader implements PodMetricsReader {
  readonly #connection: KubeConnection;
  readonly #what: string;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;

  constructor(options: HttpPodMetricsReaderOptions) {
    const base = new URL(options.connection.baseUrl);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new Error(`the API server URL must be http or https: ${options.connection.baseUrl}`);
    }
    this.#connection = options.connection;
    this.#what = `metrics.k8s.io at ${base.origin}`;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#maxResponseBytes = options.maxResponseBytes ?? 8 << 20;
  }

  async cpuUsage(namespace: string, labelSelector: string, signal: AbortSignal): Promise<PodMetricsResult> {
    const query = labelSelector === '' ? '' : `?${new URLSearchParams({ labelSelector })}`;
    const path = `/apis/metrics.k8s.io/v1beta1/namespaces/${encodeURIComponent(namespace)}/pods${query}`;
    const signals = lookupSignals(signal, this.#timeoutMs);
    const what = this.#what;
    try {
      const res = await kubeFetch(this.#connection, path, { signal: signals.signal });
      const body = await readBodyCapped(res, this.#maxResponseBytes);
      if (body === undefined) return failed('bad_response', `${what} answered more than ${this.#maxResponseBytes} bytes`);
      if (res.status < 200 || res.status >= 300) return failed('http', httpDetail(what, res.status, body));
      return parsePodMetricsList(body);
    } catch (error) {
      return { ok: false, failure: requestFailure(error, { what, signals, timeoutMs: this.#timeoutMs }) };
    }
  }
}

function failed(reason: LoadFailure['reason'], detail: string): PodMetricsResult {
  return { ok: false, failure: { reason, detail } };
}

function httpDetail(what: string, status: number, body: string): string {
  let message = excerpt(body);
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as { message?: unknown }).message === 'string') {
      message = excerpt((parsed as { message: string }).message);
    }
  } catch {
    // Not a Status object: the excerpt of the body stands.
  }
  const hint =
    status === 401 || status === 403
      ? " (the guard's token and RBAC: it needs get/list on pods.metrics.k8s.io)"
      : status === 404
        ? ' (metrics.k8s.io is not served: is metrics-server installed?)'
        : status === 503
          ? ' (the metrics API is registered but its server does not answer)'
          : '';
  return `${what} answered HTTP ${status}${hint}${message ? `: ${message}` : ''}`;
}

/**
 * Reads a PodMetricsList: per item `metadata.name` and `containers[].usage.cpu`. A pod
 * with a container lacking CPU usage is left out (metrics-server reports whole pods or
 * none, so a partial pod cannot be trusted); a CPU value that is not a quantity fails the
 * whole answer.
 */
export function parsePodMetricsList(body: string): PodMetricsResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return failed('bad_response', `the metrics API answered something other than JSON: ${excerpt(body, 80)}`);
  }
  if (!isObject(parsed) || !Array.isArray(parsed.items)) {
    return failed('bad_response', 'the metrics API answered JSON that is not a PodMetricsList');
  }
  const pods: PodCpuUsage[] = [];
  for (const item of parsed.items) {
    if (!isObject(item) || !isObject(item.metadata) || typeof item.metadata.name !== 'string') {
      return failed('bad_response', 'the metrics API answered a PodMetrics without metadata.name');
    }
    const name = item.metadata.name;
    if (!Array.isArray(item.containers) || item.containers.length === 0) continue;
    let cores = 0;
    let complete = true;
    for (const container of item.containers) {
      const cpu = isObject(container) && isObject(container.usage) ? container.usage.cpu : undefined;
      if (typeof cpu !== 'string') {
        complete = false;
        break;
      }
      const value = parseQuantity(cpu);
      if (value === undefined || value < 0) {
        return failed('bad_response', `the metrics API answered CPU usage "${excerpt(cpu, 40)}" for pod ${name}, not a quantity`);
      }
      cores += value;
    }
    if (complete) pods.push({ name, cpuCores: cores });
  }
  return { ok: true, pods };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
