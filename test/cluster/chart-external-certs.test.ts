import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificateAuthority } from '../../src/tls/certificates.ts';
import { PROJECT_ROOT } from '../helpers/process.ts';
import { type ChartPlane, FULLNAME, helmRelease, metricValue, RELEASE_NAMESPACE, startChartGuard, startChartPlane, urlModeValues } from './chart-release.ts';
import { type ClusterGuard, waitForWebhooks } from './cluster-guard.ts';
import { ADMIN, freePort, serviceAccountIdentity } from './control-plane.ts';
import { create, deployment, refusal } from './workloads.ts';

// Certificates the guard does not manage: made with `replica-guard certs create`, their CA
// given to the chart as webhook.caBundle, so the guard runs with certificates.mode
// external, as it does with cert-manager (whose Certificate and CA injector a bare API
// server cannot run: they are CRDs and a controller). The guard serves certificates of
// that CA, creates no Secret, and keeps the caBundle the chart declared, never its own.

const agent = serviceAccountIdentity('agents', 'agent-1');
const prober = serviceAccountIdentity('agents', 'prober');
const ADMISSION = '/apis/admissionregistration.k8s.io/v1';
const CONFIGURATIONS = ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'] as const;

let chart: ChartPlane;
let guard: ClusterGuard | undefined;

beforeAll(async () => {
  chart = await startChartPlane([agent, prober]);
});

afterAll(async () => {
  await guard?.stop();
  await chart?.stop();
});

const caBundles = async () =>
  Promise.all(
    CONFIGURATIONS.map(async (r) => (await chart.plane.must<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(ADMIN, `${ADMISSION}/${r}/${FULLNAME}`)).webhooks[0]?.clientConfig.caBundle),
  );

describe('certificates managed outside the guard (webhook.caBundle, as with cert-manager)', () => {
  it('are served from the given CA; the guard creates no Secret and keeps the declared caBundle, restoring it after a hand edit', async () => {
    const { plane, dir } = chart;
    const certs = join(dir, 'certs');
    await promisify(execFile)(process.execPath, ['bin/replica-guard.mjs', 'certs', 'create', '--dir', certs], { cwd: PROJECT_ROOT });
    const port = await freePort();
    const run = await helmRelease(plane, 'install', [...(await urlModeValues(dir, port)), '--set-file', `webhook.caBundle=${join(certs, 'ca.crt')}`]);
    expect(run.code, run.stderr).toBe(0);
    const declared = Buffer.from(await readFile(join(certs, 'ca.crt'), 'utf8')).toString('base64');
    expect(await caBundles()).toEqual([declared, declared]);

    const token = await plane.serviceAccountToken(RELEASE_NAMESPACE, FULLNAME);
    guard = await startChartGuard(plane, token, { webhookPort: port, certs });
    // Served from the given CA (re-issued from it where the chart's configuration names
    // more than `certs create` covered: its CA key is there).
    const served = new X509Certificate(await readFile(join(guard.dir, 'certs', 'tls.crt'), 'utf8'));
    expect(served.checkIssued(new X509Certificate(await readFile(join(certs, 'ca.crt'), 'utf8')))).toBe(true);
    await waitForWebhooks(plane, prober, 'agents', [guard]);
    const denied = await create(plane, agent, 'deployments', deployment('agents', 'beyond', 9, 'agent-1'));
    expect(denied.status, refusal(denied)).toBe(403);
    expect((await plane.api(ADMIN, `/api/v1/namespaces/${RELEASE_NAMESPACE}/secrets/${FULLNAME}-certs`)).status).toBe(404);
    expect(await caBundles()).toEqual([declared, declared]);

    const foreign = await generateCertificateAuthority({ commonName: 'someone-else', now: new Date() });
    await plane.must(ADMIN, `${ADMISSION}/validatingwebhookconfigurations/${FULLNAME}`, {
      method: 'PATCH',
      body: [{ op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: Buffer.from(foreign.cert).toString('base64') }],
      contentType: 'application/json-patch+json',
    });
    await expect.poll(caBundles, { timeout: 15_000 }).toEqual([declared, declared]);
    // Counted once the guard's write has returned, which may be just after the API server shows it.
    const started = guard;
    await expect
      .poll(() => metricValue(started, 'replica_guard_webhook_configuration_restores_total', { configuration: 'validating' }), { timeout: 5000 })
      .toBe(1);
    expect(guard.process.lines.filter((l) => /\b403\b|forbidden/i.test(JSON.stringify(l)))).toEqual([]);

    // The guard handed the caBundle it put back to the chart's manager: a helm upgrade
    // with a new CA (server-side apply) goes through without a conflict.
    const next = join(dir, 'next-certs');
    await promisify(execFile)(process.execPath, ['bin/replica-guard.mjs', 'certs', 'create', '--dir', next], { cwd: PROJECT_ROOT });
    const upgrade = await helmRelease(plane, 'upgrade', [...(await urlModeValues(dir, port)), '--set-file', `webhook.caBundle=${join(next, 'ca.crt')}`]);
    expect(upgrade.code, upgrade.stderr).toBe(0);
    const nextBundle = Buffer.from(await readFile(join(next, 'ca.crt'), 'utf8')).toString('base64');
    expect(await caBundles()).toEqual([nextBundle, nextBundle]);
  });
});
