import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificateAuthority, generateServingCertificate } from '../../src/tls/certificates.ts';
import { bundleCertificates } from '../../src/tls/rotation-plan.ts';
import { type ChartPlane, FULLNAME, helmRelease, RELEASE_NAMESPACE, startChartGuard, startChartPlane, urlModeValues } from './chart-release.ts';
import { type ClusterGuard, waitForWebhooks } from './cluster-guard.ts';
import { ADMIN, type ControlPlane, freePort, serviceAccountIdentity } from './control-plane.ts';
import { deployment, failedWrites, pathOf, startScaleStream } from './workloads.ts';

// Self-managed certificates near expiry, installed by the chart in url mode, rotated by
// the guard while agents write through the API server: the new CA enters both
// caBundles beside the old one before the guard serves a certificate of it, the old one
// leaves only once the guard serves the new, and no call of the API server fails.

const agent = serviceAccountIdentity('agents', 'agent-1');
const prober = serviceAccountIdentity('agents', 'prober');
const ADMISSION = '/apis/admissionregistration.k8s.io/v1';
const SECRET = `/api/v1/namespaces/${RELEASE_NAMESPACE}/secrets/${FULLNAME}-certs`;
const DAY_MS = 86_400_000;

let plane: ControlPlane;
let dir: string;
let guard: ClusterGuard | undefined;

let chart: ChartPlane;

beforeAll(async () => {
  chart = await startChartPlane([agent, prober]);
  ({ plane, dir } = chart);
});

afterAll(async () => {
  await guard?.stop();
  await chart?.stop();
});

/** The caBundles both configurations carry now, as certificate fingerprints per webhook. */
async function servedBundles(): Promise<string[][]> {
  const out: string[][] = [];
  for (const resource of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations']) {
    const c = await plane.must<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(ADMIN, `${ADMISSION}/${resource}/${FULLNAME}`);
    for (const w of c.webhooks) out.push(bundleCertificates(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8')).map((x) => x.fingerprint256));
  }
  return out;
}

describe('rotation of the self-managed certificates near expiry', () => {
  it('keeps the old CA in both bundles until the guard serves the new certificate, and agent writes never fail meanwhile', async () => {
    const port = await freePort();
    const run = await helmRelease(plane, 'install', [
      ...(await urlModeValues(dir, port)),
      // Rounds every second, so that the rotation happens within the test.
      '--set',
      'reconcile.intervalSeconds=1,config.certificates.checkInterval=1s,config.certificates.reloadInterval=1s',
    ]);
    expect(run.code, run.stderr).toBe(0);

    // A CA made 25 days ago that expires in 5 days: within renewBeforeDays (30).
    const made = new Date(Date.now() - 25 * DAY_MS);
    const oldCa = await generateCertificateAuthority({ commonName: 'expiring-ca', validityDays: 30, now: made });
    const names = { dnsNames: [FULLNAME, `${FULLNAME}.${RELEASE_NAMESPACE}`, `${FULLNAME}.${RELEASE_NAMESPACE}.svc`, `${FULLNAME}.${RELEASE_NAMESPACE}.svc.cluster.local`], ipAddresses: ['127.0.0.1'] };
    const serving = await generateServingCertificate(oldCa, { ...names, now: made });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await plane.must(ADMIN, `/api/v1/namespaces/${RELEASE_NAMESPACE}/secrets`, {
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: `${FULLNAME}-certs` },
        data: { 'ca.crt': b64(oldCa.cert), 'ca.key': b64(oldCa.key), 'tls.crt': b64(serving.cert), 'tls.key': b64(serving.key), 'ca-bundle.crt': b64(oldCa.cert) },
      },
    });
    await plane.must(ADMIN, pathOf('deployments', 'agents'), { body: deployment('agents', 'rotating', 1, 'agent-1') });
    const oldFingerprint = new X509Certificate(oldCa.cert).fingerprint256;

    const token = await plane.serviceAccountToken(RELEASE_NAMESPACE, FULLNAME);
    guard = await startChartGuard(plane, token, { webhookPort: port });
    await waitForWebhooks(plane, prober, 'agents', [guard]);
    const stream = startScaleStream(plane, agent, 'agents', 'rotating', 2);

    // Watch both bundles until only a new CA is left in them.
    const seen: string[][][] = [];
    await expect
      .poll(
        async () => {
          const bundles = await servedBundles();
          seen.push(bundles);
          return bundles.every((b) => b.length === 1 && b[0] !== oldFingerprint);
        },
        { timeout: 45_000, interval: 150 },
      )
      .toBe(true);
    // A few more writes against the new certificate alone.
    await new Promise((r) => setTimeout(r, 2000));
    const answers = await stream.stop();

    expect(answers.length).toBeGreaterThan(20);
    expect(failedWrites(answers)).toEqual([]);
    // Between old alone and new alone, both CAs were in every bundle.
    expect(seen.some((bundles) => bundles.every((b) => b.length === 2 && b.includes(oldFingerprint)))).toBe(true);
    const steps = guard.process.lines.filter((l) => l.msg === 'rotated the self-managed certificates').map((l) => l.step);
    expect(steps).toEqual(['new-ca', 'retire-old-ca']);

    const secret = await plane.must<{ data: Record<string, string> }>(ADMIN, SECRET);
    const newCa = new X509Certificate(Buffer.from(secret.data['ca.crt'] ?? '', 'base64'));
    expect(newCa.fingerprint256).not.toBe(oldFingerprint);
    const served = new X509Certificate(await readFile(join(guard.dir, 'certs', 'tls.crt'), 'utf8'));
    expect(served.checkIssued(newCa)).toBe(true);
  }, 120_000);
});
