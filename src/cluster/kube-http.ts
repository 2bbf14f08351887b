import { request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions, request as httpsRequest, type RequestOptions } from 'node:https';
import { Readable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';

/** The part of `fetch` the reflectors use: GET with headers and an abort signal. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/**
 * How to reach the kube-apiserver. Plain list/watch over `fetch`: the base URL, and for
 * authentication and TLS either a bearer token with an undici `dispatcher` (an Agent
 * carrying the CA) or a whole custom `fetch`, such as {@link connectionFromKubeConfig}'s.
 */
export interface KubeConnection {
  /** e.g. `https://10.0.0.1:443`, without a trailing slash. */
  readonly baseUrl: string;
  /** Defaults to the global `fetch`. */
  readonly fetch?: FetchLike | undefined;
  /** A static bearer token; prefer `headers` when tokens rotate. */
  readonly token?: string | undefined;
  /** Headers for each request, asked anew every time (bound service-account tokens rotate). */
  readonly headers?: (() => Promise<Readonly<Record<string, string>>>) | undefined;
  /** Passed to `fetch` as is: an undici Agent with the cluster's CA, for instance. */
  readonly dispatcher?: RequestInit['dispatcher'];
  /** Closes the idle keep-alive sockets this connection holds; its owner calls it after stopping its users. */
  readonly close?: (() => void) | undefined;
}

/** The headers of one request on this connection. */
export async function requestHeaders(connection: KubeConnection): Promise<Record<string, string>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (connection.token) headers.authorization = `Bearer ${connection.token}`;
  if (connection.headers) Object.assign(headers, await connection.headers());
  return headers;
}

/**
 * One request to the API server on this connection: the connection's `fetch` (or the
 * global one), its base URL (a path prefix kept, a trailing slash dropped) before `path`,
 * its credentials merged under the request's own headers, and its dispatcher.
 */
export async function kubeFetch(
  connection: KubeConnection,
  path: string,
  init: Omit<RequestInit, 'headers'> & { readonly headers?: Readonly<Record<string, string>> },
): Promise<Response> {
  const url = `${connection.baseUrl.replace(/\/+$/, '')}${path}`;
  const request: RequestInit = { ...init, headers: { ...(await requestHeaders(connection)), ...init.headers } };
  if (connection.dispatcher !== undefined) request.dispatcher = connection.dispatcher;
  return (connection.fetch ?? ((u: string, i: RequestInit) => fetch(u, i)))(url, request);
}

/** TLS settings of a connection made with Node's own HTTP stack. */
export interface NodeTls {
  readonly ca?: string | Buffer | undefined;
  readonly cert?: string | Buffer | undefined;
  readonly key?: string | Buffer | undefined;
  readonly rejectUnauthorized?: boolean | undefined;
  readonly servername?: string | undefined;
}

/**
 * A `fetch` over `node:http`/`node:https` with a keep-alive agent carrying the given TLS
 * settings (a CA, a client certificate). The global `fetch` only takes TLS settings
 * through an undici Agent, which is not a dependency here; this serves the kubeconfig path.
 */
export function nodeFetch(tls: NodeTls = {}): { readonly fetch: FetchLike; readonly close: () => void } {
  const agent = new HttpsAgent({ keepAlive: true, ...definedTls(tls) });
  return { fetch: (url, init) => nodeRequest(url, init, agent), close: () => agent.destroy() };
}

/**
 * A connection from a loaded kubeconfig (`kc.loadFromFile`, `loadFromCluster`,
 * `loadFromDefault`). @kubernetes/client-node is used only for this: it understands
 * every way a kubeconfig authenticates (tokens, token files that rotate, client
 * certificates, exec plugins, OIDC). Headers are asked for on every request so that a
 * refreshed token is picked up; the TLS agent is kept while the TLS material is the same.
 */
export function connectionFromKubeConfig(kc: KubeConfig): KubeConnection {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  let cached: { readonly identity: string; readonly agent: HttpsAgent } | undefined;
  const agentFor = (options: {
    readonly ca?: unknown;
    readonly cert?: unknown;
    readonly key?: unknown;
    readonly rejectUnauthorized?: boolean | undefined;
    readonly servername?: string | undefined;
  }): HttpsAgent => {
    const tls: NodeTls = {
      ca: pem(options.ca),
      cert: pem(options.cert),
      key: pem(options.key),
      rejectUnauthorized: options.rejectUnauthorized,
      servername: options.servername,
    };
    const identity = JSON.stringify([String(tls.ca), String(tls.cert), String(tls.key), tls.rejectUnauthorized, tls.servername]);
    if (cached?.identity !== identity) {
      cached?.agent.destroy();
      cached = { identity, agent: new HttpsAgent({ keepAlive: true, ...definedTls(tls) }) };
    }
    return cached.agent;
  };
  const fetch: FetchLike = async (url, init) => {
    const options: RequestOptions = {};
    await kc.applyToHTTPSOptions(options);
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : String(value));
    }
    if (options.auth) headers.set('authorization', `Basic ${Buffer.from(options.auth).toString('base64')}`);
    // A proxy from the kubeconfig comes with its own agent; otherwise keep one keep-alive agent.
    const agent = cluster.proxyUrl ? options.agent : agentFor(options);
    return nodeRequest(url, { ...init, headers }, agent || undefined);
  };
  return { baseUrl: cluster.server.replace(/\/+$/, ''), fetch, close: () => cached?.agent.destroy() };
}

function pem(value: unknown): string | Buffer | undefined {
  if (typeof value === 'string' || Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) return value.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v))).join('\n');
  return undefined;
}

function definedTls(tls: NodeTls): AgentOptions {
  const out: AgentOptions = {};
  if (tls.ca !== undefined) out.ca = tls.ca;
  if (tls.cert !== undefined) out.cert = tls.cert;
  if (tls.key !== undefined) out.key = tls.key;
  if (tls.rejectUnauthorized !== undefined) out.rejectUnauthorized = tls.rejectUnauthorized;
  if (tls.servername !== undefined) out.servername = tls.servername;
  return out;
}

function nodeRequest(url: string, init: RequestInit, agent: RequestOptions['agent'] | undefined): Promise<Response> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const options: RequestOptions = { method: init.method ?? 'GET', headers };
    // A plain-HTTP server (kubectl proxy) cannot take the TLS agent: node:http refuses it.
    if (agent !== undefined && !(target.protocol === 'http:' && agent instanceof HttpsAgent)) options.agent = agent;
    if (init.signal) options.signal = init.signal;
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(target, options, (res) => {
      const status = res.statusCode ?? 502;
      const responseHeaders = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
        responseHeaders.append(res.rawHeaders[i] ?? '', res.rawHeaders[i + 1] ?? '');
      }
      const noBody = status === 204 || status === 304 || init.method === 'HEAD';
      if (noBody) res.resume();
      // Readable.toWeb's stream type is node:stream/web's; the same object at run time.
      const body = noBody ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>);
      resolve(new Response(body, { status, headers: responseHeaders }));
    });
    req.on('error', reject);
    if (typeof init.body === 'string') req.end(init.body);
    else req.end();
  });
}
