import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { configSchema } from '../src/config.ts';
import { type AssembledGuard, assembleGuard } from '../src/guard.ts';
import { generateCertificateAuthority, generateServingCertificate } from '../src/tls/certificates.ts';
import { FakeApiServer } from './fake-apiserver/fake-apiserver.ts';
import { policy } from './helpers/guard.ts';
import { metricValue, waitFor } from './helpers/telemetry.ts';
import { desiredConfigMap, GUARD_RESOURCES, NAME, NAMESPACE, servedConfigurations } from './helpers/webhook-configurations.ts';

// The guard wired for a cluster with the chart's settings: it creates its Secret, serves
// that certificate, patches both caBundles and keeps the configurations as declared.

let fake: FakeApiServer;
let dir: string;
let guard: AssembledGuard | undefined;

beforeEach(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50, extraResources: GUARD_RESOURCES });
  fake.put('configmaps', desiredConfigMap());
  for (const { resource, object } of servedConfigurations()) fake.put(resource, object);
  dir = await mkdtemp(join(tmpdir(), 'rg-upkeep-'));
  await writeFile(join(dir, 'policy.yaml'), policy('upkeep', { mode: 'audit', limits: { perWorkload: 4 } }));
});
afterEach(async () => {
  await guard?.close();
  guard = undefined;
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

async function start(certificates: Record<string, unknown>): Promise<AssembledGuard> {
  const config = configSchema.parse({
    policies: { dir },
    tls: { dir: join(dir, 'certs'), dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] },
    cluster: { namespace: NAMESPACE },
    view: { bookmarkInterval: '100ms', requestTimeout: '2s' },
    certificates,
    reconcile: { enabled: true, configMap: `${NAME}-webhooks`, interval: '100ms' },
    logLevel: 'silent',
  });
  guard = await assembleGuard(config, { logger: pino({ level: 'silent' }), clock: systemClock, cluster: { baseUrl: fake.url } });
  return guard;
}

const caBundles = () =>
  ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'].map((resource) => {
    const served = fake.get(resource, undefined, NAME) as unknown as { webhooks: { clientConfig: { caBundle?: string } }[] };
    return served.webhooks[0]?.clientConfig.caBundle;
  });

describe('the guard on a cluster, with the chart settings', () => {
  it('creates its Secret on first start, serves that certificate and patches both caBundles', async () => {
    const g = await start({ mode: 'self', secret: `${NAME}-certs`, peers: '' });
    const secret = fake.get('secrets', NAMESPACE, `${NAME}-certs`) as unknown as { data: Record<string, string> };
    const fromSecret = (key: string) => Buffer.from(secret.data[key] ?? '', 'base64').toString();
    expect(await readFile(join(dir, 'certs', 'tls.crt'), 'utf8')).toBe(fromSecret('tls.crt'));
    expect(g.caCert).toBe(fromSecret('ca-bundle.crt'));
    const expected = secret.data['ca-bundle.crt'];
    await waitFor(() => caBundles().every((b) => b === expected), 'both caBundles patched');

    // A change behind the guard's back is put back within an interval.
    const validating = fake.get('validatingwebhookconfigurations', undefined, NAME) as unknown as { webhooks: { failurePolicy: string }[] };
    const [w] = validating.webhooks;
    if (w) w.failurePolicy = 'Ignore';
    fake.put('validatingwebhookconfigurations', validating as never);
    await waitFor(async () => (await metricValue(g.metrics, 'replica_guard_webhook_configuration_restores_total', { configuration: 'validating' })) === 1, 'a restore');
    expect((fake.get('validatingwebhookconfigurations', undefined, NAME) as unknown as { webhooks: { failurePolicy: string }[] }).webhooks[0]?.failurePolicy).toBe('Fail');
  });

  it('with certificates from cert-manager, never touches caBundle and never writes a Secret', async () => {
    const ca = await generateCertificateAuthority({ now: new Date() });
    const serving = await generateServingCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now: new Date() });
    await mkdir(join(dir, 'certs'));
    await writeFile(join(dir, 'certs', 'ca.crt'), ca.cert);
    await writeFile(join(dir, 'certs', 'tls.crt'), serving.cert);
    await writeFile(join(dir, 'certs', 'tls.key'), serving.key);
    const g = await start({ mode: 'external', secret: `${NAME}-certs` });
    await waitFor(async () => (await metricValue(g.metrics, 'replica_guard_webhook_configuration_in_sync', { configuration: 'validating' })) === 1, 'a round');
    expect(caBundles()).toEqual([undefined, undefined]);
    expect(fake.get('secrets', NAMESPACE, `${NAME}-certs`)).toBeUndefined();
    expect(g.caCert).toBe(ca.cert);
  });
});
