import { execFile } from 'node:child_process';
import { Agent } from 'node:https';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { AdmissionReviewResponse } from '../src/admission/response.ts';
import { review } from './helpers/fixtures.ts';
import { policy } from './helpers/guard.ts';
import { type GuardProcess, httpGet, httpsPost, PROJECT_ROOT, startGuardProcess } from './helpers/process.ts';
import { parseExposition, sampleValue, waitFor } from './helpers/telemetry.ts';

const run = promisify(execFile);

/** Agents may run 4 instances per workload; a Scale's parent the process has never seen is judged by caps. */
const capPolicy = (cap: number) =>
  policy('e2e-cap', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { perWorkload: cap } });

describe('replica-guard as a process, over real TLS', () => {
  let dir: string;
  let certs: string;
  let policyDir: string;
  let config: string;
  let guard: GuardProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-e2e-'));
    // Nested and absent: the first start must create it.
    certs = join(dir, 'state', 'certs');
    policyDir = join(dir, 'policies');
    await mkdir(policyDir);
    await writeFile(join(policyDir, 'agents.yaml'), capPolicy(4));
    config = join(dir, 'config.yaml');
    await writeFile(
      config,
      YAML.stringify({
        webhook: { port: 0 },
        ops: { port: 0 },
        tls: { dir: certs },
        // Only file-system events can explain a reload within a test.
        policies: { dir: policyDir, pollInterval: '1h' },
      }),
    );
  });

  afterEach(async () => {
    await guard?.stop('SIGKILL');
    guard = undefined;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const answerOf = (text: string): AdmissionReviewResponse['response'] => (JSON.parse(text) as AdmissionReviewResponse).response;

  it('generates certificates on first start, serves a verified chain, decides, and stops on SIGTERM with 0', async () => {
    await expect(stat(certs)).rejects.toThrow();
    guard = await startGuardProcess(['--config', config]);
    expect(guard.webhookUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(guard.opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
    for (const file of ['ca.key', 'tls.crt', 'tls.key']) await stat(join(certs, file));
    expect(guard.lines.some((l) => l.msg === 'generated a certificate authority and serving certificate')).toBe(true);

    expect((await httpGet(`${guard.opsUrl}/readyz`)).status).toBe(200);
    expect((await httpGet(`${guard.opsUrl}/healthz`)).status).toBe(200);

    const denied = review('deployment-scale-agent-10');
    const deniedAnswer = await httpsPost(`${guard.webhookUrl}/validate?timeout=10s`, denied, { ca });
    expect(deniedAnswer.status).toBe(200);
    expect(answerOf(deniedAnswer.body)).toMatchObject({ uid: denied.request.uid, allowed: false, status: { code: 403 } });

    const allowed = review('deployment-create-agent');
    const allowedAnswer = await httpsPost(`${guard.webhookUrl}/validate`, allowed, { ca });
    expect(answerOf(allowedAnswer.body)).toMatchObject({ uid: allowed.request.uid, allowed: true });

    // The in-cluster Service name is covered too (Go checks SANs only).
    const viaService = await httpsPost(`${guard.webhookUrl}/validate`, review('deployment-create-admin'), {
      ca,
      servername: 'replica-guard.replica-guard.svc',
    });
    expect(answerOf(viaService.body).allowed).toBe(true);
    // Without the CA the chain does not verify: the client checks something real.
    await expect(httpsPost(`${guard.webhookUrl}/validate`, allowed)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);

    const metrics = parseExposition((await httpGet(`${guard.opsUrl}/metrics`)).body);
    expect(sampleValue(metrics, 'replica_guard_admission_requests_total', { webhook: 'validate', verdict: 'denied', kind: 'Scale' })).toBe(1);
    const expiry = sampleValue(metrics, 'replica_guard_certificate_expiry_timestamp_seconds') ?? 0;
    expect(expiry).toBeGreaterThan(Date.now() / 1000 + 300 * 86_400);

    expect(await guard.stop('SIGTERM')).toBe(0);
    expect(guard.lines.some((l) => l.msg === 'stopping' && l.signal === 'SIGTERM')).toBe(true);
  });

  it('reuses the certificates on the second start', async () => {
    const before = await Promise.all(['ca.crt', 'tls.crt'].map((f) => readFile(join(certs, f))));
    guard = await startGuardProcess(['--config', config]);
    const after = await Promise.all(['ca.crt', 'tls.crt'].map((f) => readFile(join(certs, f))));
    expect(after[0]?.equals(before[0] ?? Buffer.alloc(0))).toBe(true);
    expect(after[1]?.equals(before[1] ?? Buffer.alloc(0))).toBe(true);
    expect(guard.lines.some((l) => l.msg === 'reusing TLS certificates')).toBe(true);
    const answer = await httpsPost(`${guard.webhookUrl}/validate`, review('deployment-create-admin'), { ca: before[0]?.toString('utf8') });
    expect(answerOf(answer.body).allowed).toBe(true);
    expect(await guard.stop('SIGTERM')).toBe(0);
  });

  it('stops promptly on SIGTERM while a client holds an idle keep-alive connection', async () => {
    guard = await startGuardProcess(['--config', config]);
    const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
    const agent = new Agent({ keepAlive: true, ca });
    try {
      const answer = await httpsPost(`${guard.webhookUrl}/validate`, review('deployment-create-admin'), { ca, agent });
      expect(answer.status).toBe(200);
      // The connection stays open and idle, as the apiserver keeps it for 90 s.
      expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);
      const stopped = guard.stop('SIGTERM');
      const outcome = await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 10_000, 'still running'))]);
      expect(outcome).toBe(0);
    } finally {
      agent.destroy();
    }
  });

  it('writes every audit line to stdout before it exits on SIGTERM, though its log writes are asynchronous', async () => {
    guard = await startGuardProcess(['--config', config]);
    const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
    const agent = new Agent({ keepAlive: true, maxSockets: 8, ca });
    const uids = Array.from({ length: 300 }, (_, i) => `final-lines-${i}`);
    try {
      const answers = await Promise.all(
        uids.map((uid) => {
          const body = review('deployment-scale-agent-10');
          body.request.uid = uid;
          return httpsPost(`${guard?.webhookUrl ?? ''}/validate`, body, { ca, agent });
        }),
      );
      expect(answers.map((a) => a.status)).toEqual(uids.map(() => 200));
    } finally {
      agent.destroy();
    }
    // Stopped at once: the last decisions' lines may still be queued for stdout.
    expect(await guard.stop('SIGTERM')).toBe(0);
    const audited = guard.lines.filter((l) => l.msg === 'decision').map((l) => (l.audit as { uid?: unknown } | undefined)?.uid);
    expect(new Set(audited)).toEqual(new Set(uids));
    expect(guard.lines.at(-1)?.msg).toBe('stopped');
  });

  it('picks up a changed policy file without a restart', async () => {
    const file = join(policyDir, 'agents.yaml');
    await writeFile(file, capPolicy(4));
    guard = await startGuardProcess(['--config', config]);
    const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
    const decide = async () =>
      answerOf((await httpsPost(`${guard?.webhookUrl}/validate`, review('deployment-scale-agent-3'), { ca })).body).allowed;
    expect(await decide()).toBe(true);
    await writeFile(file, capPolicy(2));
    await waitFor(async () => (await decide()) === false, 'the lower cap to apply');
    expect(guard.child.exitCode).toBeNull();
    await writeFile(file, capPolicy(4));
  });

  it('exits 1 with a message for a configuration it cannot use', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, YAML.stringify({ webhook: { port: 'https' } }));
    const result = await run(process.execPath, ['src/main.ts', 'serve', '--config', bad], { cwd: PROJECT_ROOT }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code?: number; stderr?: string }) => ({ code: error.code, stderr: error.stderr ?? '' }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/webhook\.port/);
  });
});
