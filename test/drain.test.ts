import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { scaleReview } from './helpers/fixtures.ts';
import { policy } from './helpers/guard.ts';
import { type GuardProcess, guardProcessConfig, httpGet, httpsPost, startGuardProcess } from './helpers/process.ts';

const DRAIN_MS = 1500;

/** A review POSTed in two halves: the second half (and so the answer) waits for `finish()`. */
function slowReview(url: string, body: unknown, ca: string): { finish(): void; answer: Promise<{ status: number; text: string; at: number }> } {
  const payload = Buffer.from(JSON.stringify(body));
  const half = Math.floor(payload.length / 2);
  let finish: () => void = () => undefined;
  const answer = new Promise<{ status: number; text: string; at: number }>((resolve, reject) => {
    const req = request(url, { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, at: Date.now() }));
    });
    req.on('error', reject);
    req.write(payload.subarray(0, half));
    finish = () => req.end(payload.subarray(half));
  });
  return { finish: () => finish(), answer };
}

describe('graceful drain on SIGTERM', () => {
  let dir: string;
  let config: string;
  let certs: string;
  let guard: GuardProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-drain-'));
    certs = join(dir, 'certs');
    config = await guardProcessConfig(dir, policy('drain-cap', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { perWorkload: 4 } }), {
      drain: { period: `${DRAIN_MS}ms`, inFlightTimeout: '10s' },
    });
  });
  afterEach(async () => {
    await guard?.stop('SIGKILL');
    guard = undefined;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('turns not ready, keeps serving for the drain period, finishes a review in flight, then exits 0', async () => {
    guard = await startGuardProcess(['--config', config]);
    const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
    expect((await httpGet(`${guard.opsUrl}/readyz`)).status).toBe(200);
    const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
      guard?.child.once('exit', (code) => resolve({ code, at: Date.now() })),
    );

    const inFlight = slowReview(`${guard.webhookUrl}/validate?timeout=10s`, scaleReview('web', 2, 10), ca);
    const signalled = Date.now();
    guard.child.kill('SIGTERM');

    // Not ready at once, with the reason.
    const readyz = await waitForStatus(`${guard.opsUrl}/readyz`, 503);
    expect(JSON.parse(readyz.body)).toMatchObject({ ready: false, reasons: ['draining: the guard is stopping'] });

    // Still deciding during the drain period, and asking the client to reconnect elsewhere.
    const during = await httpsPostWithHeaders(`${guard.webhookUrl}/validate?timeout=10s`, scaleReview('api', 1, 10), ca);
    expect(Date.now() - signalled).toBeLessThan(DRAIN_MS);
    expect(during.status).toBe(200);
    expect(during.connection).toBe('close');
    expect(JSON.parse(during.body)).toMatchObject({ response: { allowed: false } });

    // Past the period the servers close: no new connection is accepted...
    await sleep(DRAIN_MS + 300 - (Date.now() - signalled));
    await expect(httpsPost(`${guard.webhookUrl}/validate?timeout=10s`, scaleReview('late', 1, 2), { ca })).rejects.toThrow(/ECONNREFUSED/);
    expect(guard.child.exitCode).toBeNull();

    // ...but the review in flight is answered before the process exits.
    inFlight.finish();
    const answered = await inFlight.answer;
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.text)).toMatchObject({ response: { allowed: false } });
    const exit = await exited;
    expect(exit.code).toBe(0);
    expect(exit.at).toBeGreaterThanOrEqual(answered.at);
    expect(guard.lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        'stopping',
        'drain period over: closing, finishing the reviews in flight',
        'stopped',
      ]),
    );
  });

  it('cuts the drain short on a second signal', async () => {
    guard = await startGuardProcess(['--config', config]);
    const exited = new Promise<number>((resolve) => guard?.child.once('exit', () => resolve(Date.now())));
    const signalled = Date.now();
    guard.child.kill('SIGTERM');
    await waitForStatus(`${guard.opsUrl}/readyz`, 503);
    guard.child.kill('SIGINT');
    expect((await exited) - signalled).toBeLessThan(DRAIN_MS);
  });
});

async function waitForStatus(url: string, status: number): Promise<{ status: number; body: string }> {
  for (let i = 0; i < 50; i++) {
    const got = await httpGet(url);
    if (got.status === status) return got;
    await sleep(20);
  }
  throw new Error(`${url} never answered ${status}`);
}

function httpsPostWithHeaders(url: string, body: unknown, ca: string): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = request(url, { method: 'POST', ca, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
