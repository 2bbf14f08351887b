import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { excerpt, lookupSignals, requestFailure } from './http-failure.ts';
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
  /** The API server's base URL (`https://kubernetes.default.svc`). */
  readonly url: string;
  /** The bearer token, read on every call: projected service-account tokens rotate. */
  readonly token?: (() => string | undefined | Promise<string | undefined>) | undefined;
  /** PEM of the CA that signs the API server's certificate (in cluster: the service account's ca.crt). */
  readonly ca?: string | undefined;
  /** Deadline of one list (default 2 s). */
  readonly timeoutMs?: number | undefined;
  /** Largest answer read, in bytes (default 8 MiB). */
  readonly maxResponseBytes?: number | undefined;
}

/**
 * Lists PodMetrics over HTTP(S): `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods
 * ?labelSelector=...`, as the HPA controller does, with a bearer token and a CA.
 * metrics-server does not paginate this list, so neither does the reader; the answer is
 * bounded by the workload's pods and capped in size.
 */
export class HttpPodMetricsReader implements PodMetricsReader {
  readonly #base: URL;
  readonly #token: HttpPodMetricsReaderOptions['token'];
  readonly #ca: string | undefined;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;

  constructor(options: HttpPodMetricsReaderOptions) {
    this.#base = new URL(options.url);
    if (!this.#base.pathname.endsWith('/')) this.#base.pathname += '/';
    if (this.#base.protocol !== 'http:' && this.#base.protocol !== 'https:') {
      throw new Error(`the metrics API URL must be http or https: ${options.url}`);
    }
    this.#token = options.token;
    this.#ca = options.ca;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#maxResponseBytes = options.maxResponseBytes ?? 8 << 20;
  }

  async cpuUsage(namespace: string, labelSelector: string, signal: AbortSignal): Promise<PodMetricsResult> {
    const url = new URL(`apis/metrics.k8s.io/v1beta1/namespaces/${encodeURIComponent(namespace)}/pods`, this.#base);
    if (labelSelector !== '') url.searchParams.set('labelSelector', labelSelector);
    const signals = lookupSignals(signal, this.#timeoutMs);
    const what = `metrics.k8s.io at ${this.#base.origin}`;
    try {
      const token = await this.#token?.();
      const answer = await this.#get(url, token, signals.signal);
      if (answer === 'too-large') {
        return failed('bad_response', `${what} answered more than ${this.#maxResponseBytes} bytes`);
      }
      if (answer.status < 200 || answer.status >= 300) return failed('http', httpDetail(what, answer.status, answer.body));
      return parsePodMetricsList(answer.body);
    } catch (error) {
      return { ok: false, failure: requestFailure(error, { what, signals, timeoutMs: this.#timeoutMs }) };
    }
  }

  #get(url: URL, token: string | undefined, signal: AbortSignal): Promise<{ status: number; body: string } | 'too-large'> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== undefined && token !== '') headers.authorization = `Bearer ${token}`;
    return new Promise((resolve, reject) => {
      const onResponse = (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.#maxResponseBytes) {
            res.destroy();
            resolve('too-large');
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
        // An abort or a reset mid-answer may close the stream without an error event.
        res.on('close', () => {
          if (!res.complete) reject(new Error('the connection closed before the answer was complete'));
        });
      };
      const options = { method: 'GET', headers, signal };
      const req =
        url.protocol === 'https:'
          ? httpsRequest(url, { ...options, ...(this.#ca === undefined ? {} : { ca: this.#ca }) }, onResponse)
          : httpRequest(url, options, onResponse);
      req.on('error', reject);
      req.end();
    });
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
