import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { loadKubeConnection } from '../../src/cluster/kube-config.ts';
import { type KubeConnection, nodeFetch } from '../../src/cluster/kube-http.ts';
import { ListWatch, type RawObject } from '../../src/cluster/list-watch.ts';
import { generateCertificateAuthority, generateServingCertificate } from '../../src/tls/certificates.ts';
import { FakeApiServer } from '../fake-apiserver/fake-apiserver.ts';
import { eventually, FAST } from './view-helpers.ts';

// The path a real cluster takes: a kubeconfig (CA, bearer token) loaded through
// @kubernetes/client-node, then list and watch over HTTPS. The fake sits behind a TLS
// proxy that records the Authorization header.

let fake: FakeApiServer;
let proxy: Server;
let caPem: string;
let dir: string;
const authorizations: (string | undefined)[] = [];

beforeAll(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  const now = new Date();
  const ca = await generateCertificateAuthority({ now });
  caPem = ca.cert;
  const serving = await generateServingCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now });
  proxy = createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
    authorizations.push(req.headers.authorization);
    const upstream = httpRequest(`${fake.url}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    req.pipe(upstream);
    res.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  dir = mkdtempSync(join(tmpdir(), 'rg-kubeconfig-'));
}, 60_000);

afterAll(async () => {
  proxy.closeAllConnections();
  await new Promise<void>((r) => proxy.close(() => r()));
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

function kubeconfig(withCa: boolean): string {
  const port = (proxy.address() as AddressInfo).port;
  const file = join(dir, withCa ? 'with-ca' : 'without-ca');
  const cluster = withCa
    ? `certificate-authority-data: ${Buffer.from(caPem).toString('base64')}\n    server: https://127.0.0.1:${port}`
    : `server: https://127.0.0.1:${port}`;
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    ${cluster}
users:
- name: guard
  user:
    token: t0k3n
contexts:
- name: test
  context: { cluster: test, user: guard }
current-context: test
`,
  );
  return file;
}

function reflect(connection: KubeConnection, seen: Map<string, RawObject>): ListWatch {
  return new ListWatch({
    connection,
    resource: { group: 'apps', version: 'v1', resource: 'deployments' },
    sink: { apply: (type, o, key) => (type === 'DELETED' ? seen.delete(key) : seen.set(key, o)) },
    clock: systemClock,
    tuning: FAST,
  });
}

describe('a connection loaded from a kubeconfig', () => {
  it('lists and watches over HTTPS with the kubeconfig CA and bearer token', async () => {
    fake.put('deployments', { metadata: { namespace: 'a', name: 'one' }, spec: { replicas: 1 } });
    const connection = loadKubeConnection({ kubeconfig: kubeconfig(true) });
    expect(connection.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const seen = new Map<string, RawObject>();
    const r = reflect(connection, seen);
    r.start();
    try {
      await r.whenSynced();
      expect([...seen.keys()]).toEqual(['a/one']);
      fake.put('deployments', { metadata: { namespace: 'a', name: 'two' }, spec: { replicas: 1 } });
      await eventually(() => expect(seen.has('a/two')).toBe(true));
      expect(authorizations.length).toBeGreaterThanOrEqual(2);
      expect(authorizations.every((a) => a === 'Bearer t0k3n')).toBe(true);
    } finally {
      await r.stop();
      connection.close?.();
    }
  });

  it('refuses a server whose certificate the kubeconfig does not trust', async () => {
    const before = authorizations.length;
    const r = reflect(loadKubeConnection({ kubeconfig: kubeconfig(false) }), new Map());
    r.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(r.synced).toBe(false);
    expect(authorizations.length).toBe(before);
    await r.stop();
  });

  it('also works from a CA and a token without a kubeconfig, through nodeFetch', async () => {
    const port = (proxy.address() as AddressInfo).port;
    const tls = nodeFetch({ ca: caPem });
    const seen = new Map<string, RawObject>();
    const r = reflect({ baseUrl: `https://127.0.0.1:${port}`, fetch: tls.fetch, token: 'plain', close: tls.close }, seen);
    r.start();
    try {
      await r.whenSynced();
      expect(seen.size).toBeGreaterThanOrEqual(1);
      expect(authorizations.at(-1)).toBe('Bearer plain');
    } finally {
      await r.stop();
      tls.close();
    }
  });
});
