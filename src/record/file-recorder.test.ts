import { open as openFile, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { allowed } from '../admission/decision.ts';
import type { Clock } from '../clock.ts';
import { FileRecorder, type FileRecorderOptions, RECORDING_FILE } from './file-recorder.ts';
import { createRecorderMetrics } from './recorder-metrics.ts';
import type { RecordEntry } from './review-record.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function movableClock(): Clock & { advance(ms: number): void } {
  let t = Date.parse('2026-12-05T08:00:00Z');
  return { now: () => new Date(t), monotonicMs: () => t, advance: (ms) => void (t += ms) };
}

function entry(i: number, at: Date): RecordEntry {
  return {
    at,
    request: {
      uid: `uid-${i}`,
      kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      subResource: 'scale',
      name: 'web',
      namespace: 'agents',
      operation: 'UPDATE',
      userInfo: { username: 'system:serviceaccount:agents:a', groups: [] },
      object: { spec: { replicas: i } },
      oldObject: { spec: { replicas: 0 } },
      dryRun: false,
    },
    agent: 'system:serviceaccount:agents:a',
    policies: [],
    decidedBy: 'policies',
    lookups: undefined,
    kind: 'Deployment',
    staleness: 0,
    stale: undefined,
    facts: [],
    decision: allowed(),
    lead: undefined,
    from: 0,
    requested: i,
    to: i,
    episodeVerdict: 'allowed',
    episode: 'recorded',
  };
}

async function setup(options: Partial<FileRecorderOptions> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'rg-recorder-'));
  dirs.push(dir);
  const registry = new Registry();
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const clock = movableClock();
  const recorder = new FileRecorder({
    dir,
    run: 'r',
    maxFileBytes: 1 << 20,
    maxFileAgeMs: 3_600_000,
    maxTotalBytes: 1 << 30,
    queueLength: 10_000,
    clock,
    logger,
    metrics: createRecorderMetrics(registry),
    ...options,
  });
  const files = async () => (await readdir(dir)).sort();
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    return m?.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value ?? 0;
  };
  return { dir, recorder, clock, lines, files, metric };
}


describe('FileRecorder', () => {
  it('rotates by size: no file grows past the bound once it holds a record', async () => {
    const { recorder, clock, files, dir, metric } = await setup({ maxFileBytes: 2_000 });
    for (let i = 0; i < 40; i++) {
      recorder.record(entry(i, clock.now()));
      await recorder.idle();
    }
    await recorder.close();
    const names = await files();
    expect(names.length).toBeGreaterThan(3);
    for (const n of names) {
      expect(n).toMatch(RECORDING_FILE);
      expect((await stat(join(dir, n))).size).toBeLessThanOrEqual(2_000);
    }
    const uids = (await Promise.all(names.map((n) => readFile(join(dir, n), 'utf8'))))
      .join('')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { request: { uid: string } }).request.uid);
    expect(uids).toEqual(Array.from({ length: 40 }, (_, i) => `uid-${i}`));
    expect(await metric('replica_guard_recording_records_total')).toBe(40);
  });

  it('rotates by age', async () => {
    const { recorder, clock, files } = await setup({ maxFileAgeMs: 60_000 });
    recorder.record(entry(1, clock.now()));
    await recorder.idle();
    clock.advance(30_000);
    recorder.record(entry(2, clock.now()));
    await recorder.idle();
    expect(await files()).toHaveLength(1);
    clock.advance(30_000);
    recorder.record(entry(3, clock.now()));
    await recorder.close();
    expect(await files()).toHaveLength(2);
  });

  it('deletes the oldest files to stay within the total, never the one being written', async () => {
    const { recorder, clock, files, dir, metric } = await setup({ maxFileBytes: 1_000, maxTotalBytes: 3_000 });
    for (let i = 0; i < 60; i++) {
      recorder.record(entry(i, clock.now()));
      await recorder.idle();
    }
    await recorder.close();
    const names = await files();
    const sizes = await Promise.all(names.map(async (n) => (await stat(join(dir, n))).size));
    // The bound is enforced when a file is started, so the current file may add up to one more file's size.
    expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3_000 + 1_000);
    expect(await metric('replica_guard_recording_deleted_files_total')).toBeGreaterThan(0);
    const last = (await readFile(join(dir, names[names.length - 1] ?? ''), 'utf8')).trim().split('\n').pop() ?? '';
    expect((JSON.parse(last) as { request: { uid: string } }).request.uid).toBe('uid-59');
  });

  it.skipIf(!existsSync('/dev/full'))('counts and logs a full disk once, drops the records, and keeps accepting them', async () => {
    let full = true;
    const { recorder, clock, lines, metric, files } = await setup({
      openFile: (path) => (full ? openFile('/dev/full', 'w') : openFile(path, 'ax')),
    });
    for (let i = 0; i < 5; i++) {
      expect(() => recorder.record(entry(i, clock.now()))).not.toThrow();
      await recorder.idle();
    }
    expect(await metric('replica_guard_recording_write_errors_total', { reason: 'no_space' })).toBe(5);
    expect(await metric('replica_guard_recording_dropped_records_total', { reason: 'write_error' })).toBe(5);
    expect(lines.filter((l) => l.level === 50)).toHaveLength(1);
    expect(lines[0]).toMatchObject({ reason: 'no_space', err: expect.objectContaining({ code: 'ENOSPC' }) });

    full = false;
    recorder.record(entry(9, clock.now()));
    await recorder.close();
    expect(await metric('replica_guard_recording_records_total')).toBe(1);
    expect(lines.some((l) => l.msg === 'the recording is written again' && l.dropped === 5)).toBe(true);
    expect((await files()).filter((n) => RECORDING_FILE.test(n))).toHaveLength(1);
  });

  it('drops and counts what does not fit the queue, without blocking', async () => {
    const { recorder, clock, metric } = await setup({ queueLength: 3 });
    for (let i = 0; i < 10; i++) recorder.record(entry(i, clock.now()));
    await recorder.close();
    expect(await metric('replica_guard_recording_dropped_records_total', { reason: 'queue_full' })).toBe(7);
    expect(await metric('replica_guard_recording_records_total')).toBe(3);
  });
});
