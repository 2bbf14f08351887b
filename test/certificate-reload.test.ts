import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeAtomically } from '../src/tls/certificate-store.ts';
import { generateCertificateAuthority, generateServingCertificate, type PemPair } from '../src/tls/certificates.ts';
import { policy } from './helpers/guard.ts';
import { type GuardProcess, guardProcessConfig, httpGet, startGuardProcess } from './helpers/process.ts';
import { parseExposition, sampleValue } from './helpers/telemetry.ts';

const NAMES = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

/** The fingerprint of the certificate a TLS server presents to a new connection that trusts `ca`. */
function servedFingerprint(url: string, ca: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ca, servername: 'localhost' }, () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

describe('rotated certificate files', () => {
  let dir: string;
  let certs: string;
  let config: string;
  let ca: PemPair;
  let guard: GuardProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-reload-'));
    certs = join(dir, 'certs');
    await mkdir(certs);
    config = await guardProcessConfig(dir, policy('reload', { mode: 'audit', limits: { perWorkload: 4 } }), {
      tls: NAMES,
      certificates: { reloadInterval: '200ms' },
    });
    ca = await generateCertificateAuthority({ now: new Date() });
  });
  afterEach(async () => {
    await guard?.stop('SIGKILL');
    guard = undefined;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes a pair as a writer would: key first, then certificate. */
  async function provide(pair: PemPair): Promise<void> {
    await writeAtomically(join(certs, 'tls.key'), pair.key, 0o600);
    await writeAtomically(join(certs, 'tls.crt'), pair.cert, 0o644);
  }

  async function waitForServed(url: string, fingerprint: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if ((await servedFingerprint(url, ca.cert)) === fingerprint) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the guard never served ${fingerprint}`);
  }

  it('serves a replaced pair to new connections without a restart, and keeps it over a broken one', async () => {
    const first = await generateServingCertificate(ca, { ...NAMES, now: new Date() });
    await writeFile(join(certs, 'ca.crt'), ca.cert);
    await provide(first);
    guard = await startGuardProcess(['--config', config]);
    const pid = guard.child.pid;
    expect(await servedFingerprint(guard.webhookUrl, ca.cert)).toBe(new X509Certificate(first.cert).fingerprint256);

    const second = await generateServingCertificate(ca, { ...NAMES, now: new Date(), validityDays: 30 });
    await provide(second);
    await waitForServed(guard.webhookUrl, new X509Certificate(second.cert).fingerprint256);
    expect(guard.child.pid).toBe(pid);
    // The log is written asynchronously: the line may trail the change it reports.
    await expect.poll(() => guard?.lines.some((l) => l.msg === 'serving a new TLS certificate')).toBe(true);
    const metrics = parseExposition((await httpGet(`${guard.opsUrl}/metrics`)).body);
    expect(sampleValue(metrics, 'replica_guard_certificate_expiry_timestamp_seconds')).toBe(
      Math.floor(new X509Certificate(second.cert).validToDate.getTime() / 1000),
    );

    // A key that belongs to another certificate: skipped, with a warning, the pair in service stays.
    await writeAtomically(join(certs, 'tls.key'), first.key, 0o600);
    for (let i = 0; i < 40 && !guard.lines.some((l) => String(l.msg).startsWith('the TLS files changed but cannot be served')); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(guard.lines.find((l) => String(l.msg).startsWith('the TLS files changed but cannot be served'))).toMatchObject({
      problem: 'tls.key does not belong to tls.crt',
    });
    expect(await servedFingerprint(guard.webhookUrl, ca.cert)).toBe(new X509Certificate(second.cert).fingerprint256);
  });
});
