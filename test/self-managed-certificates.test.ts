import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { createReconcilerMetrics, WebhookReconciler } from '../src/cluster/webhook-reconciler.ts';
import { generateCertificateAuthority, generateServingCertificate } from '../src/tls/certificates.ts';
import { bundleCertificates } from '../src/tls/rotation-plan.ts';
import { peersServe, readyPeers } from '../src/tls/peer-certificates.ts';
import { SecretCertificates } from '../src/tls/secret-certificates.ts';
import { type ServingReloader, watchServingCertificate } from '../src/tls/serving-reloader.ts';
import { FakeApiServer } from './fake-apiserver/fake-apiserver.ts';
import { capturingLogger } from './helpers/telemetry.ts';
import { desiredConfigMap, GUARD_RESOURCES, NAME, NAMESPACE, servedConfigurations } from './helpers/webhook-configurations.ts';

const SECRET = `${NAME}-certs`;
const NAMES = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

/** One replica: its certificates, and a real TLS server serving its directory's files. */
interface Replica {
  readonly dir: string;
  readonly certs: SecretCertificates;
  server?: Server;
  reloader?: ServingReloader;
  port?: number;
}

let fake: FakeApiServer;
let root: string;
let reconciler: WebhookReconciler;
const replicas: Replica[] = [];

beforeEach(async () => {
  fake = await FakeApiServer.start({ extraResources: GUARD_RESOURCES });
  fake.put('configmaps', desiredConfigMap());
  for (const { resource, object } of servedConfigurations()) fake.put(resource, object);
  root = await mkdtemp(join(tmpdir(), 'rg-secret-certs-'));
  const { logger } = capturingLogger('silent');
  reconciler = new WebhookReconciler({
    connection: { baseUrl: fake.url },
    namespace: NAMESPACE,
    configMap: `${NAME}-webhooks`,
    restore: true,
    caBundle: () => replicas[0]?.certs.caBundle(),
    metrics: createReconcilerMetrics(new Registry()),
    logger,
  });
});
afterEach(async () => {
  for (const r of replicas.splice(0)) {
    r.reloader?.close();
    r.server?.closeAllConnections();
    await new Promise((resolve) => (r.server ? r.server.close(resolve) : resolve(undefined)));
  }
  await fake.close();
  await rm(root, { recursive: true, force: true });
});

function replica(name: string, renewBeforeDays = 30, names: { dnsNames: string[]; ipAddresses: string[] } = NAMES): Replica {
  const dir = join(root, name);
  const { logger } = capturingLogger('silent');
  const connection = { baseUrl: fake.url };
  const r: Replica = {
    dir,
    certs: new SecretCertificates({
      connection,
      namespace: NAMESPACE,
      secretName: SECRET,
      dir,
      ...names,
      renewBeforeDays,
      clock: systemClock,
      logger,
      everyReplicaServes: async (ca) => (await peersServe(await readyPeers(connection, NAMESPACE, NAME, AbortSignal.timeout(5000)), ca, 2000)).all,
      servedBundles: () => reconciler.servedCaBundles(),
    }),
  };
  replicas.push(r);
  return r;
}

/** Serves the replica's files over real TLS, reloading them as the guard does. */
async function serve(r: Replica): Promise<void> {
  const [cert, key] = await Promise.all([readFile(join(r.dir, 'tls.crt'), 'utf8'), readFile(join(r.dir, 'tls.key'), 'utf8')]);
  const server = createServer({ cert, key }, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.server = server;
  r.port = (server.address() as AddressInfo).port;
  const { logger } = capturingLogger('silent');
  r.reloader = watchServingCertificate({ dir: r.dir, current: { cert, key }, intervalMs: 60_000, logger, apply: (pair) => server.setSecureContext({ cert: pair.cert, key: pair.key }) });
}

/** The Service's EndpointSlice listing the serving replicas as ready. */
function publishEndpoints(): void {
  // One slice per replica: they listen on different ports of the same address.
  for (const [i, r] of replicas.entries()) {
    fake.put('endpointslices', {
      metadata: { name: `${NAME}-${i}`, namespace: NAMESPACE, labels: { 'kubernetes.io/service-name': NAME } },
      addressType: 'IPv4',
      ports: [{ name: 'webhook', port: r.port }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    });
  }
}

/** Puts a Secret as the guard writes it, with a CA and serving certificate of these lifetimes. */
async function seedSecret(days: { readonly caDays?: number; readonly servingDays?: number }): Promise<{ serving: { cert: string } }> {
  const now = new Date();
  const ca = await generateCertificateAuthority({ now, validityDays: days.caDays });
  const serving = await generateServingCertificate(ca, { ...NAMES, now, validityDays: days.servingDays });
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  fake.put('secrets', {
    metadata: { name: SECRET, namespace: NAMESPACE },
    data: { 'ca.crt': b64(ca.cert), 'ca.key': b64(ca.key), 'tls.crt': b64(serving.cert), 'tls.key': b64(serving.key), 'ca-bundle.crt': b64(ca.cert) },
  });
  return { serving };
}

/** The caBundle both configurations carry now (they must agree). */
function liveBundle(): string {
  const bundles = ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'].map((resource) => {
    const served = fake.get(resource, undefined, NAME) as unknown as { webhooks: { clientConfig: { caBundle?: string } }[] };
    return Buffer.from(served.webhooks[0]?.clientConfig.caBundle ?? '', 'base64').toString('utf8');
  });
  expect(bundles[0]).toBe(bundles[1]);
  return bundles[0] ?? '';
}

/** Connects as the API server does: trusting exactly the live caBundle, verifying the name. */
function apiServerCall(r: Replica, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: r.port, ca, servername: 'localhost' }, () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

async function everyCallSucceeds(): Promise<string[]> {
  const ca = liveBundle();
  return Promise.all(replicas.map((r) => apiServerCall(r, ca)));
}

describe('self-managed certificates in the Secret', () => {
  it('two replicas starting at the same moment end with the same certificate', async () => {
    fake.setLatency(20);
    const [a, b] = [replica('a'), replica('b')];
    await Promise.all([a.certs.start(), b.certs.start()]);
    const [certA, certB] = await Promise.all([readFile(join(a.dir, 'tls.crt'), 'utf8'), readFile(join(b.dir, 'tls.crt'), 'utf8')]);
    expect(certA).toBe(certB);
    expect(fake.requests.filter((r) => r.startsWith('POST'))).toHaveLength(2);
    const stored = fake.get('secrets', NAMESPACE, SECRET) as unknown as { data: Record<string, string> };
    expect(Buffer.from(stored.data['tls.crt'] ?? '', 'base64').toString()).toBe(certA);
    // The directory holds no CA key: the TLS layer treats it as provided material.
    await expect(readFile(join(a.dir, 'ca.key'))).rejects.toThrow(/ENOENT/);
  });

  it('re-issues on start, from the same CA, a certificate in the Secret that does not cover its names', async () => {
    const { serving } = await seedSecret({});
    const before = fake.get('secrets', NAMESPACE, SECRET) as unknown as { data: Record<string, string> };
    const a = replica('a', 30, { dnsNames: ['localhost', 'guard.example'], ipAddresses: ['127.0.0.1'] });
    await a.certs.start();
    const served = await readFile(join(a.dir, 'tls.crt'), 'utf8');
    expect(served).not.toBe(serving.cert);
    expect(new X509Certificate(served).checkHost('guard.example')).toBe('guard.example');
    const stored = fake.get('secrets', NAMESPACE, SECRET) as unknown as { data: Record<string, string> };
    expect(Buffer.from(stored.data['tls.crt'] ?? '', 'base64').toString()).toBe(served);
    expect(stored.data['ca.crt']).toBe(before.data['ca.crt']);
    expect(stored.data['ca-bundle.crt']).toBe(before.data['ca-bundle.crt']);
  });

  it('refuses a directory that holds a CA of its own, naming it', async () => {
    const a = replica('a');
    await mkdir(a.dir, { recursive: true });
    await writeFile(join(a.dir, 'ca.key'), 'a key of its own');
    await expect(a.certs.start()).rejects.toThrow(/ca\.key exists: the directory holds a CA of its own/);
    expect(fake.get('secrets', NAMESPACE, SECRET)).toBeUndefined();
  });

  it('patches the caBundle of both configurations on first start', async () => {
    const a = replica('a');
    await a.certs.start();
    await reconciler.reconcile();
    expect(liveBundle()).toBe(a.certs.material()?.caCert);
    await serve(a);
    await everyCallSucceeds();
  });

  it('rotates a CA near expiry keeping the old one in the bundle until both replicas serve the new certificate, and no call fails meanwhile', async () => {
    // A Secret whose CA expires in 10 days, with renewal at 30.
    const { serving: oldServing } = await seedSecret({ caDays: 10 });
    const [a, b] = [replica('a'), replica('b')];
    await Promise.all([a.certs.start(), b.certs.start()]);
    await Promise.all([serve(a), serve(b)]);
    publishEndpoints();
    await reconciler.reconcile();
    const oldPrint = new X509Certificate(oldServing.cert).fingerprint256;
    expect(await everyCallSucceeds()).toEqual([oldPrint, oldPrint]);

    // Step 1: a new CA; both in the bundle; nobody serves the new certificate before the configurations trust it.
    expect(await a.certs.tick()).toMatchObject({ step: 'new-ca' });
    expect(bundleCertificates(a.certs.material()?.bundle ?? '')).toHaveLength(2);
    expect(await everyCallSucceeds()).toEqual([oldPrint, oldPrint]);
    await b.certs.tick();
    await Promise.all(replicas.map((r) => r.reloader?.check()));
    expect(await everyCallSucceeds()).toEqual([oldPrint, oldPrint]);

    // Step 2: the configurations carry old and new; each replica then serves the new certificate.
    await reconciler.reconcile();
    expect(bundleCertificates(liveBundle())).toHaveLength(2);
    await a.certs.tick();
    await a.reloader?.check();
    const newPrint = new X509Certificate(a.certs.material()?.cert ?? '').fingerprint256;
    // One replica on the new certificate, one on the old: the bundle trusts both, and the old CA stays.
    expect(await everyCallSucceeds()).toEqual([newPrint, oldPrint]);
    expect(await a.certs.tick()).toEqual({ step: 'none' });
    expect(bundleCertificates(a.certs.material()?.bundle ?? '')).toHaveLength(2);

    // Step 3: both serve the new certificate; the old CA leaves the bundle.
    await b.certs.tick();
    await b.reloader?.check();
    expect(await everyCallSucceeds()).toEqual([newPrint, newPrint]);
    expect(await b.certs.tick()).toEqual({ step: 'retire-old-ca' });
    // The reconciling replica reads the Secret again before it reconciles.
    expect(await a.certs.tick()).toEqual({ step: 'none' });
    await reconciler.reconcile();
    expect(bundleCertificates(liveBundle()).map((c) => c.fingerprint256)).toEqual([new X509Certificate(a.certs.material()?.caCert ?? '').fingerprint256]);
    expect(await everyCallSucceeds()).toEqual([newPrint, newPrint]);
  });

  it('two replicas re-issuing at once write the Secret once, and both adopt that certificate', async () => {
    const { serving: expiring } = await seedSecret({ servingDays: 10 });
    const [a, b] = [replica('a'), replica('b')];
    await Promise.all([a.certs.start(), b.certs.start()]);
    fake.setLatency(20);
    const before = fake.revision;
    const steps = await Promise.all([a.certs.tick(), b.certs.tick()]);
    expect(steps.map((s) => s.step)).toEqual(['reissue', 'reissue']);
    expect(fake.requests.filter((r) => r.startsWith('PUT'))).toHaveLength(2);
    // Both read the same version: one update won, the other got 409 Conflict and wrote nothing.
    expect(fake.revision - before).toBe(1);
    const stored = Buffer.from((fake.get('secrets', NAMESPACE, SECRET) as unknown as { data: Record<string, string> }).data['tls.crt'] ?? '', 'base64').toString();
    expect(stored).not.toBe(expiring.cert);
    expect(await Promise.all([a.certs.tick(), b.certs.tick()])).toEqual([{ step: 'none' }, { step: 'none' }]);
    expect([a.certs.material()?.cert, b.certs.material()?.cert]).toEqual([stored, stored]);
    expect(await Promise.all([readFile(join(a.dir, 'tls.crt'), 'utf8'), readFile(join(b.dir, 'tls.crt'), 'utf8')])).toEqual([stored, stored]);
  });
});
