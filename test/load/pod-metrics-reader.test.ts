import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeFetch } from '../../src/cluster/kube-http.ts';
import { HttpPodMetricsReader } from '../../src/load/pod-metrics-reader.ts';
import { generateCertificateAuthority, generateServingCertificate } from '../../src/tls/certificates.ts';
import { startSilentServer } from '../helpers/prometheus.ts';
import { NEVER } from './load-fixtures.ts';

/**
 * A stand-in for metrics-server behind the API server, which cannot run here. It serves
 * `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods` as a PodMetricsList in the shape
 * metrics-server answers (kind, apiVersion, metadata, items[].metadata.{name,namespace},
 * timestamp, window, containers[].usage.{cpu,memory}), honouring: the namespace in the
 * path, `labelSelector` as comma-separated `key=value` terms (the reader passes the
 * selector through as given; set-based selectors are served by the fake API server's
 * PodMetrics, test/fake-apiserver), a bearer token (401 with a Status otherwise), 404 for
 * any other path, as when metrics.k8s.io is not registered. Not modelled: set-based
 * selectors, field selectors, watch, pagination (metrics-server ignores `limit`).
 */
interface FakePod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Container name → CPU usage as metrics-server writes it (nanocores). */
  readonly cpu: Readonly<Record<string, string>>;
}

const TOKEN = 'test-token';

function fakeMetricsServer(pods: () => readonly FakePod[]) {
  const requests: { url: string; authorization: string | undefined }[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    requests.push({ url: req.url ?? '', authorization: req.headers.authorization });
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/apis\/metrics\.k8s\.io\/v1beta1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      json(401, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
      return;
    }
    if (req.method !== 'GET' || m === null) {
      json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'the server could not find the requested resource', code: 404 });
      return;
    }
    const namespace = decodeURIComponent(m[1] ?? '');
    const terms = (url.searchParams.get('labelSelector') ?? '')
      .split(',')
      .filter((t) => t !== '')
      .map((t) => t.split('=') as [string, string]);
    const items = pods()
      .filter((p) => p.namespace === namespace && terms.every(([k, v]) => p.labels[k] === v))
      .map((p) => ({
        metadata: { name: p.name, namespace: p.namespace, creationTimestamp: '2026-11-27T12:00:00Z', labels: p.labels },
        timestamp: '2026-11-27T11:59:50Z',
        window: '10.123s',
        containers: Object.entries(p.cpu).map(([name, cpu]) => ({ name, usage: { cpu, memory: '41236Ki' } })),
      }));
    json(200, { kind: 'PodMetricsList', apiVersion: 'metrics.k8s.io/v1beta1', metadata: {}, items });
  };
  return { handler, requests };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

let pods: FakePod[] = [];
const plain = fakeMetricsServer(() => pods);
const httpServer = createHttpServer(plain.handler);
let httpUrl = '';

beforeAll(async () => {
  httpUrl = `http://127.0.0.1:${await listen(httpServer)}`;
});
afterAll(async () => {
  await close(httpServer);
});

interface ReaderOverrides {
  readonly url?: string;
  readonly token?: () => string | Promise<string>;
  readonly ca?: string;
  readonly timeoutMs?: number;
  readonly maxResponseBytes?: number;
}

/** Node agents made for a CA, closed after the run. */
const agents: (() => void)[] = [];
afterAll(() => {
  for (const close of agents) close();
});

/**
 * A reader on a connection shaped as the guard builds it (kube-http.ts): a base URL, a
 * bearer token asked for on every request, and for a CA a `fetch` over a Node TLS agent.
 */
const reader = (o: ReaderOverrides = {}) => {
  const token = o.token ?? (() => TOKEN);
  const tls = o.ca === undefined ? undefined : nodeFetch({ ca: o.ca });
  if (tls) agents.push(tls.close);
  return new HttpPodMetricsReader({
    connection: {
      baseUrl: o.url ?? httpUrl,
      headers: async () => ({ authorization: `Bearer ${await token()}` }),
      fetch: tls?.fetch,
    },
    timeoutMs: o.timeoutMs,
    maxResponseBytes: o.maxResponseBytes,
  });
};

describe('HttpPodMetricsReader', () => {
  it("lists the selected pods' CPU usage, summed over containers, in cores", async () => {
    pods = [
      { namespace: 'shop', name: 'web-1', labels: { app: 'web' }, cpu: { app: '250000000n', sidecar: '1500000n' } },
      { namespace: 'shop', name: 'web-2', labels: { app: 'web' }, cpu: { app: '500m' } },
      { namespace: 'shop', name: 'api-1', labels: { app: 'api' }, cpu: { app: '2' } },
      { namespace: 'other', name: 'web-9', labels: { app: 'web' }, cpu: { app: '2' } },
    ];
    const result = await reader().cpuUsage('shop', 'app=web', NEVER);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.pods.map((p) => p.name)).toEqual(['web-1', 'web-2']);
    expect(result.pods[0]?.cpuCores).toBeCloseTo(0.2515, 9);
    expect(result.pods[1]?.cpuCores).toBe(0.5);
    const last = plain.requests.at(-1);
    expect(last?.url).toBe('/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=app%3Dweb');
    expect(last?.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('takes a static token from the connection, as an in-cluster connection carries it', async () => {
    pods = [{ namespace: 'shop', name: 'web-1', labels: { app: 'web' }, cpu: { app: '100m' } }];
    const r = new HttpPodMetricsReader({ connection: { baseUrl: `${httpUrl}/`, token: TOKEN } });
    expect(await r.cpuUsage('shop', '', NEVER)).toEqual({ ok: true, pods: [{ name: 'web-1', cpuCores: 0.1 }] });
    expect(plain.requests.at(-1)?.url).toBe('/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods');
  });

  it('reads the token on every call, so a rotated token is used', async () => {
    pods = [];
    let token = 'old';
    const r = reader({ token: async () => token });
    expect(await r.cpuUsage('shop', 'app=web', NEVER)).toMatchObject({ ok: false, failure: { reason: 'http' } });
    token = TOKEN;
    expect(await r.cpuUsage('shop', 'app=web', NEVER)).toEqual({ ok: true, pods: [] });
  });

  it('says what to check on 401 and on 404', async () => {
    const unauthorized = await reader({ token: () => 'wrong' }).cpuUsage('shop', 'app=web', NEVER);
    expect(unauthorized).toMatchObject({ ok: false, failure: { reason: 'http', detail: expect.stringContaining('HTTP 401') } });
    if (!unauthorized.ok) expect(unauthorized.failure.detail).toContain('RBAC');
    const missing = await reader({ url: `${httpUrl}/not-an-apiserver` }).cpuUsage('shop', 'app=web', NEVER);
    expect(missing).toMatchObject({ ok: false, failure: { reason: 'http', detail: expect.stringContaining('metrics-server installed') } });
  });

  it('refuses a CPU usage that is not a quantity', async () => {
    pods = [{ namespace: 'shop', name: 'web-1', labels: { app: 'web' }, cpu: { app: 'lots' } }];
    expect(await reader().cpuUsage('shop', 'app=web', NEVER)).toMatchObject({ ok: false, failure: { reason: 'bad_response' } });
  });

  it('is unreachable when nothing listens', async () => {
    const probe = createHttpServer();
    const port = await listen(probe);
    await close(probe);
    const result = await reader({ url: `http://127.0.0.1:${port}` }).cpuUsage('shop', 'app=web', NEVER);
    expect(result).toMatchObject({ ok: false, failure: { reason: 'unreachable', detail: expect.stringContaining('connection refused') } });
  });

  it('gives up at its deadline when the server never answers', async () => {
    const silent = await startSilentServer();
    try {
      const started = performance.now();
      const result = await reader({ url: silent.url, timeoutMs: 200 }).cpuUsage('shop', 'app=web', NEVER);
      expect(result).toMatchObject({ ok: false, failure: { reason: 'timeout', detail: expect.stringContaining('within 200 ms') } });
      expect(performance.now() - started).toBeLessThan(1_500);
    } finally {
      await silent.close();
    }
  });

  it('refuses an answer larger than its cap', async () => {
    pods = Array.from({ length: 200 }, (_, i) => ({ namespace: 'shop', name: `web-${i}`, labels: { app: 'web' }, cpu: { app: '1m' } }));
    const result = await reader({ maxResponseBytes: 2_000 }).cpuUsage('shop', 'app=web', NEVER);
    expect(result).toMatchObject({ ok: false, failure: { reason: 'bad_response', detail: expect.stringContaining('more than 2000 bytes') } });
  });

  it('speaks HTTPS, trusting only the CA it is given', async () => {
    const now = new Date();
    const ca = await generateCertificateAuthority({ now });
    const serving = await generateServingCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now });
    const tls = fakeMetricsServer(() => [{ namespace: 'shop', name: 'web-1', labels: { app: 'web' }, cpu: { app: '100m' } }]);
    const server = createHttpsServer({ key: serving.key, cert: serving.cert }, tls.handler);
    const port = await listen(server);
    try {
      const url = `https://127.0.0.1:${port}`;
      expect(await reader({ url, ca: ca.cert }).cpuUsage('shop', 'app=web', NEVER)).toEqual({
        ok: true,
        pods: [{ name: 'web-1', cpuCores: 0.1 }],
      });
      // Without the CA the certificate is not trusted: no connection, nothing read.
      expect(await reader({ url }).cpuUsage('shop', 'app=web', NEVER)).toMatchObject({ ok: false, failure: { reason: 'unreachable' } });
    } finally {
      await close(server);
    }
  });
});
