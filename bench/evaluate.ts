// What `replica-guard evaluate` costs on a large recording: a recording of N agent reviews
// (default 1,000,000) is made from a seed the real review handler recorded (the bench
// policy, allowed and denied streams), spread over 20 agents and 10 runs; then `evaluate`
// runs on the first 10% and on all of it, each in its own process, and the wall time and
// the peak resident memory (polled from /proc, so Linux only) are reported. Flat memory
// means the peak barely moves between the two. Not a test; about a minute.
//
//   node bench/evaluate.ts [--reviews N] [--keep]
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { systemClock } from '../src/clock.ts';
import { FileRecorder } from '../src/record/file-recorder.ts';
import { createRecorderMetrics } from '../src/record/recorder-metrics.ts';
import { RECORDING_FORMAT } from '../src/record/review-record.ts';
import { benchHandler } from './bench-handler.ts';
import { bodyFactory } from './streams.ts';

const { values } = parseArgs({ options: { reviews: { type: 'string', default: '1000000' }, keep: { type: 'boolean', default: false } } });
const reviews = Math.max(1000, Number(values.reviews));
const AGENTS = 20;
const RUNS = 10;
const SEED = 2000;

/** A seed recording written by the real handler and recorder. */
async function seedLines(dir: string): Promise<string[]> {
  const recorder = new FileRecorder({
    dir,
    run: 'seed',
    maxFileBytes: 1 << 30,
    maxFileAgeMs: 3_600_000,
    maxTotalBytes: 1 << 30,
    queueLength: SEED * 2,
    clock: systemClock,
    logger: pino({ level: 'warn' }),
    metrics: createRecorderMetrics(new Registry()),
  });
  const handle = benchHandler({ recorder });
  const allowed = bodyFactory('agent-allowed');
  const denied = bodyFactory('agent-denied');
  for (let i = 0; i < SEED; i++) await handle('validate', JSON.parse(i % 3 === 0 ? denied() : allowed()), '10s');
  await recorder.close();
  const files = (await readdir(dir)).sort();
  const text = (await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')))).join('');
  return text.split('\n').filter((l) => l !== '');
}

async function writeRecording(path: string, seed: readonly string[], count: number): Promise<void> {
  // Each line is a seed line with a new head (time, run, agent): templated, not re-serialised.
  const tails = seed.map((l) => l.slice(l.indexOf(',"request":')));
  const out = createWriteStream(path);
  const start = Date.parse('2026-12-01T00:00:00Z');
  let batch = '';
  for (let i = 0; i < count; i++) {
    const time = new Date(start + i * 100).toISOString();
    const run = `run-${Math.floor((i * RUNS) / count)}`;
    batch += `{"format":"${RECORDING_FORMAT}","time":"${time}","run":"${run}","webhook":"validate","agent":"system:serviceaccount:agents:agent-${i % AGENTS}"${tails[i % tails.length] ?? ''}\n`;
    if (batch.length > 1 << 20) {
      if (!out.write(batch)) await new Promise<void>((r) => out.once('drain', () => r()));
      batch = '';
    }
  }
  out.write(batch);
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** Runs evaluate in a process of its own; the peak RSS is polled from /proc every 20 ms. */
function measure(file: string, nodeFlags: readonly string[] = []): Promise<{ seconds: number; peakRssMiB: number; exitCode: number | null }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [...nodeFlags, 'src/cli/main.ts', 'evaluate', '-o', 'json', file], { stdio: ['ignore', 'ignore', 'inherit'] });
    let peak = 0;
    const poll = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, 'utf8').then(
        (s) => {
          const kb = Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? /VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0);
          peak = Math.max(peak, kb);
        },
        () => undefined,
      );
    }, 20);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(poll);
      resolve({ seconds: (performance.now() - started) / 1000, peakRssMiB: peak / 1024, exitCode: code });
    });
  });
}

const dir = await mkdtemp(join(tmpdir(), 'rg-bench-evaluate-'));
try {
  const seed = await seedLines(join(dir, 'seed'));
  const small = join(dir, 'small.jsonl');
  const large = join(dir, 'large.jsonl');
  const t = performance.now();
  await writeRecording(small, seed, Math.round(reviews / 10));
  await writeRecording(large, seed, reviews);
  const written = (performance.now() - t) / 1000;
  const sizeMiB = (await stat(large)).size / 2 ** 20;
  console.log(`seed: ${seed.length} reviews recorded by the handler; recordings written in ${written.toFixed(1)} s`);
  console.log(`node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'})`);
  console.log('');
  console.log('| reviews | file | V8 old space | wall time | reviews/s | peak RSS |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  // The last run caps the V8 heap: if memory grew with the input, it would run out.
  for (const [file, n, flags] of [
    [small, Math.round(reviews / 10), []],
    [large, reviews, []],
    [large, reviews, ['--max-old-space-size=48']],
  ] as const) {
    const m = await measure(file, flags);
    if (m.exitCode !== 0) throw new Error(`evaluate exited ${m.exitCode} on ${file} (${flags.join(' ')})`);
    const mib = (await stat(file)).size / 2 ** 20;
    const cap = flags.length > 0 ? '48 MiB cap' : 'default';
    console.log(`| ${n.toLocaleString('en')} | ${mib.toFixed(0)} MiB | ${cap} | ${m.seconds.toFixed(1)} s | ${Math.round(n / m.seconds).toLocaleString('en')} | ${m.peakRssMiB.toFixed(0)} MiB |`);
  }
  console.log('');
  console.log(`large recording: ${sizeMiB.toFixed(0)} MiB at ${large}${values.keep ? ' (kept)' : ''}`);
} finally {
  if (!values.keep) await rm(dir, { recursive: true, force: true });
}
