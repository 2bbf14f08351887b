// `npm run bench`: /validate over real TLS on loopback, the guard side by side with a bare
// Node HTTPS server (the ceiling for this stack), three request streams, then p99 at a
// fixed rate, with each server's CPU time per review. Not a test. See BENCHMARKS.md.
//
//   npm run bench                  full run: 5 s warm-up, 3 × 30 s per stream and server
//   BENCH_QUICK=1 npm run bench    1 s warm-up, 3 × 5 s (or: npm run bench -- --quick)
//   npm run bench -- --stream agent-allowed     only some streams (repeatable)
//   npm run bench -- --profile     then a CPU profile of the guard, one run per stream, and of
//                                  the bare server (same copy of src/)
//   npm run bench -- --profile-only    only the profiles
//   npm run bench -- --no-info     skip the run at logLevel info
//   npm run bench -- --no-diagnostic   skip the diagnostic streams (a new agent per request;
//                                      one agent whose family grows with every request)
//
// The guard runs from a copy of src/ taken at the start, so that edits made during the
// run do not mix versions between streams.
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  closeSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { get as httpGet } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { availableParallelism, cpus, release, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCH_POLICY } from './bench-policy.ts';
import { type CpuUsage, cpuSnapshot, cpuUsage } from './cpu-usage.ts';
import type { GeneratorReply, GeneratorRequest, LoadResult, LoadSpec } from './load-generator.ts';
import { formatSummary, type ProfileSummary, readProfile, summariseProfile } from './profile-summary.ts';
import { median } from './stats.ts';
import { ALL_STREAM_NAMES, bodyFactory, isStreamName, STREAM_NAMES, STREAMS, type StreamName } from './streams.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, '.bench');

const CONNECTIONS = 20;
const FIXED_RATE = 1000;
const RUNS = 3;
const WEBHOOK_PATH = '/validate?timeout=10s';

interface Settings {
  readonly quick: boolean;
  readonly warmupSec: number;
  readonly runSec: number;
  /** Streams with targets: throughput, fixed rate. */
  readonly streams: readonly StreamName[];
  /** Throughput only, no target: where the agent path's time goes. */
  readonly diagnostic: readonly StreamName[];
  /** Profile after measuring ('after'), instead of measuring ('only'), or not at all. */
  readonly profile: 'no' | 'after' | 'only';
  readonly info: boolean;
}

function settingsFromArgs(): Settings {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'profile-only': { type: 'boolean', default: false },
      'no-info': { type: 'boolean', default: false },
      'no-diagnostic': { type: 'boolean', default: false },
      stream: { type: 'string', multiple: true },
    },
  });
  const quick = values.quick || process.env.BENCH_QUICK === '1';
  const chosen = values.stream ?? [...ALL_STREAM_NAMES];
  for (const s of chosen) if (!isStreamName(s)) throw new Error(`unknown stream ${s}; one of ${ALL_STREAM_NAMES.join(', ')}`);
  const named = chosen.filter(isStreamName);
  return {
    quick,
    warmupSec: quick ? 1 : 5,
    runSec: quick ? 5 : 30,
    streams: named.filter((n) => STREAM_NAMES.includes(n)),
    diagnostic: values['no-diagnostic'] ? [] : named.filter((n) => !STREAM_NAMES.includes(n)),
    profile: values['profile-only'] ? 'only' : values.profile || process.env.BENCH_PROFILE === '1' ? 'after' : 'no',
    info: !values['no-info'],
  };
}

// ---------------------------------------------------------------- processes

const children = new Set<ChildProcess>();

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

function getStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpGet(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.setTimeout(1000, () => req.destroy());
  });
}

interface Workspace {
  readonly dir: string;
  readonly certs: string;
  readonly policies: string;
  /** A copy of the guard's sources (src/, package.json) with node_modules linked. */
  readonly guardRoot: string;
  readonly source: SourceInfo;
}

/** Which code was measured. */
interface SourceInfo {
  readonly commit: string;
  /** `git status --porcelain -- src` at the start: uncommitted changes that were measured. */
  readonly uncommitted: readonly string[];
  /** sha256 over the copied src/ files, to tell two runs of the same code. */
  readonly srcDigest: string;
}

function git(args: readonly string[]): string {
  try {
    return execFileSync('git', [...args], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

function snapshotSources(guardRoot: string): SourceInfo {
  mkdirSync(guardRoot);
  cpSync(join(root, 'src'), join(guardRoot, 'src'), { recursive: true });
  copyFileSync(join(root, 'package.json'), join(guardRoot, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(guardRoot, 'node_modules'), 'dir');
  const hash = createHash('sha256');
  for (const file of filesUnder(join(guardRoot, 'src'))) {
    hash.update(relative(guardRoot, file));
    hash.update(readFileSync(file));
  }
  return {
    commit: git(['rev-parse', 'HEAD']),
    uncommitted: git(['status', '--porcelain', '--', 'src']).split('\n').filter((l) => l !== ''),
    srcDigest: hash.digest('hex').slice(0, 16),
  };
}

function createWorkspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'replica-guard-bench-'));
  const certs = join(dir, 'certs');
  const policies = join(dir, 'policies');
  const guardRoot = join(dir, 'guard');
  mkdirSync(certs);
  mkdirSync(policies);
  const source = snapshotSources(guardRoot);
  writeFileSync(join(policies, 'bench.yaml'), BENCH_POLICY);
  return { dir, certs, policies, guardRoot, source };
}

interface Guard {
  readonly url: string;
  readonly child: ChildProcess;
}

interface GuardOptions {
  readonly logLevel: 'warn' | 'info';
  /** Where stdout (the log) goes: a file under .bench/logs, or /dev/null. */
  readonly stdout: 'file' | 'null';
  readonly cpuProfile?: { readonly dir: string; readonly name: string } | undefined;
}

let guardCount = 0;

async function startGuard(ws: Workspace, options: GuardOptions): Promise<Guard> {
  const webhookPort = await freePort();
  const opsPort = await freePort();
  guardCount++;
  const config = join(ws.dir, `config-${guardCount}.yaml`);
  writeFileSync(
    config,
    [
      `webhook: { host: 127.0.0.1, port: ${webhookPort} }`,
      `ops: { host: 127.0.0.1, port: ${opsPort} }`,
      `tls: { dir: ${JSON.stringify(ws.certs)} }`,
      `policies: { dir: ${JSON.stringify(ws.policies)} }`,
      `logLevel: ${options.logLevel}`,
      '',
    ].join('\n'),
  );
  mkdirSync(join(outDir, 'logs'), { recursive: true });
  const logFile = join(outDir, 'logs', `guard-${guardCount}.log`);
  const out = openSync(options.stdout === 'null' ? '/dev/null' : logFile, 'w');
  const err = openSync(join(outDir, 'logs', `guard-${guardCount}.stderr.log`), 'w');
  const profileArgs = options.cpuProfile
    ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfile.dir, '--cpu-prof-name', options.cpuProfile.name]
    : [];
  const child = spawn(process.execPath, [...profileArgs, 'src/main.ts', '--config', config], {
    cwd: ws.guardRoot,
    stdio: ['ignore', out, err],
  });
  closeSync(out);
  closeSync(err);
  children.add(child);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the guard exited with ${child.exitCode ?? child.signalCode}; see ${join(outDir, 'logs')}`);
    }
    if ((await getStatus(`http://127.0.0.1:${opsPort}/readyz`)) === 200) {
      return { url: `https://127.0.0.1:${webhookPort}${WEBHOOK_PATH}`, child };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stopChild(child);
  throw new Error('the guard did not become ready within 60 s');
}

async function startBare(ws: Workspace, cpuProfile?: { readonly dir: string; readonly name: string }): Promise<Guard> {
  const profileArgs = cpuProfile ? ['--cpu-prof', '--cpu-prof-dir', cpuProfile.dir, '--cpu-prof-name', cpuProfile.name] : [];
  const child = spawn(
    process.execPath,
    [...profileArgs, join(root, 'bench', 'bare-server.ts'), join(ws.certs, 'tls.key'), join(ws.certs, 'tls.crt')],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.add(child);
  const stdout = child.stdout;
  if (!stdout) throw new Error('no stdout from the bare server');
  // The first line says the port; the server dying first must not leave this waiting.
  let first = '';
  const line = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      first += chunk.toString('utf8');
      const end = first.indexOf('\n');
      if (end < 0) return;
      stdout.off('data', onData);
      child.off('exit', onExit);
      resolve(first.slice(0, end));
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      reject(new Error(`the bare server exited with ${code ?? signal} before saying its port`));
    stdout.on('data', onData);
    child.once('exit', onExit);
  });
  const parsed: unknown = JSON.parse(line);
  const port = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>).port : undefined;
  if (typeof port !== 'number') throw new Error(`the bare server said ${line}`);
  stdout.resume();
  return { url: `https://127.0.0.1:${port}${WEBHOOK_PATH}`, child };
}

// ---------------------------------------------------------------- the load generator

interface Generator {
  readonly pid: number | undefined;
  run(spec: LoadSpec): Promise<LoadResult>;
  close(): Promise<void>;
}

function startGenerator(): Generator {
  const child = fork(join(root, 'bench', 'load-generator.ts'), [], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  let nextId = 0;
  const pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();
  child.on('message', (message: GeneratorReply) => {
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.type === 'result') waiter.resolve(message.result);
    else waiter.reject(new Error(`load generator: ${message.message}`));
  });
  child.on('exit', (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`the load generator exited with ${code}`));
    pending.clear();
  });
  return {
    pid: child.pid,
    run(spec) {
      const id = ++nextId;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const request: GeneratorRequest = { type: 'run', id, spec };
        child.send(request);
      });
    },
    async close() {
      const request: GeneratorRequest = { type: 'exit' };
      const exited = once(child, 'exit');
      child.send(request);
      await exited;
      children.delete(child);
    },
  };
}

// ---------------------------------------------------------------- checks

/** One review through Node's TLS client, verified against the CA: the answer must be the expected verdict. */
function checkVerdict(url: string, stream: StreamName, expectAllowed: boolean, ca: string): Promise<void> {
  const body = bodyFactory(stream)();
  const uid = (JSON.parse(body) as { request: { uid: string } }).request.uid;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          const review = JSON.parse(text) as { response?: { uid?: unknown; allowed?: unknown } };
          if (res.statusCode !== 200 || review.response?.uid !== uid || review.response.allowed !== expectAllowed) {
            throw new Error(`expected HTTP 200, uid ${uid}, allowed ${expectAllowed}`);
          }
          resolve();
        } catch (error) {
          reject(new Error(`${stream} against ${url}: ${error instanceof Error ? error.message : String(error)}; got HTTP ${res.statusCode} ${text.slice(0, 300)}`));
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function warnAbout(what: string, r: LoadResult): void {
  const bad = r.errors + r.timeouts + r.non2xx + r.mismatches;
  if (bad > 0) {
    process.stderr.write(`  ! ${what}: errors ${r.errors}, timeouts ${r.timeouts}, non-2xx ${r.non2xx}, wrong verdict ${r.mismatches}\n`);
  }
}

// ---------------------------------------------------------------- the benchmark

/** A measured run with the CPU each process used during it. */
type Measured = LoadResult & { readonly cpu: CpuUsage; readonly attempts: number };

const QUIET_CORES = 0.3;
const QUIET_WAIT_MS = 120_000;
/** Runs disturbed by other processes are repeated this often at most; the least disturbed is kept. */
const NOISY_RETRIES = 2;
/**
 * Time spent waiting for quiet and repeating runs, per phase (throughput, fixed rate,
 * logging, profiles); past it, runs are taken as they come and flagged.
 */
const NOISE_BUDGET_MS = 15 * 60_000;
let noiseSpentMs = 0;

function newPhase(name: string): void {
  noiseSpentMs = 0;
  log(`phase: ${name}`);
}

/**
 * Other work on this small machine (a test run, a build) skews a run: wait, up to a
 * limit, until the processes that are not ours use less than QUIET_CORES.
 */
async function waitForQuiet(pids: Readonly<Record<string, number | undefined>>): Promise<number> {
  const until = Date.now() + Math.min(QUIET_WAIT_MS, Math.max(0, NOISE_BUDGET_MS - noiseSpentMs));
  let said = false;
  for (;;) {
    const before = cpuSnapshot(pids);
    await new Promise((r) => setTimeout(r, 1000));
    const foreign = cpuUsage(before, cpuSnapshot(pids)).foreignCores;
    if (said) noiseSpentMs += 1000;
    if (foreign < QUIET_CORES || Date.now() > until) {
      if (said) log(foreign < QUIET_CORES ? 'quiet again' : `still busy (${foreign} cores used by others); measuring anyway`);
      return foreign;
    }
    if (!said) log(`other processes use ${foreign} cores; waiting up to ${QUIET_WAIT_MS / 1000} s for quiet`);
    said = true;
  }
}


/** `retries` 0: one run whatever the noise (a profile must see exactly the requests counted). */
async function measure(gen: Generator, server: Guard, loadSpec: LoadSpec, retries = NOISY_RETRIES): Promise<Measured> {
  const pids = { server: server.child.pid, generator: gen.pid, orchestrator: process.pid };
  let best: Measured | undefined;
  for (let attempt = 0; attempt <= retries; attempt++) {
    await waitForQuiet(pids);
    const before = cpuSnapshot(pids);
    const result = await gen.run(loadSpec);
    const cpu = cpuUsage(before, cpuSnapshot(pids));
    const run: Measured = { ...result, cpu, attempts: attempt + 1 };
    if (!best || cpu.foreignCores < best.cpu.foreignCores) best = run;
    if (cpu.foreignCores < QUIET_CORES || noiseSpentMs > NOISE_BUDGET_MS) break;
    noiseSpentMs += loadSpec.durationSec * 1000;
    if (retries > 0) {
      log(`  other processes used ${cpu.foreignCores} cores during this run${attempt < retries ? '; repeating it' : '; keeping the least disturbed'}`);
    }
  }
  if (!best) throw new Error('no run');
  return best;
}

interface RunFigures {
  readonly requestsPerSec: number;
  readonly p50: number;
  readonly p99: number;
}

interface StreamResult {
  readonly stream: StreamName;
  readonly guardRuns: readonly Measured[];
  readonly bareRuns: readonly Measured[];
  readonly guard: RunFigures;
  readonly bare: RunFigures;
  readonly ratio: number;
  /** Guard / bare at least this; undefined for the diagnostic stream. */
  readonly target: number | undefined;
}

interface FixedRateResult {
  readonly stream: StreamName;
  readonly pacing: LoadSpec['pacing'];
  readonly guard: Measured;
  readonly bare: Measured;
}

interface InfoResult {
  readonly stream: StreamName;
  readonly info: Measured;
  /** The first warn-level run of the same stream, also right after a warm-up on a fresh guard. */
  readonly warnFirstRun: Measured | undefined;
}

function figures(runs: readonly LoadResult[]): RunFigures {
  return {
    requestsPerSec: median(runs.map((r) => r.requestsPerSec)),
    p50: median(runs.map((r) => r.latencyMs.p50)),
    p99: median(runs.map((r) => r.latencyMs.p99)),
  };
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);
const fmtRate = (n: number) => Math.round(n).toLocaleString('en-US');

function spec(
  url: string,
  stream: StreamName,
  expectAllowed: boolean,
  ca: string,
  durationSec: number,
  rate?: { readonly overallRate: number; readonly pacing: LoadSpec['pacing'] },
): LoadSpec {
  return {
    url,
    stream,
    connections: CONNECTIONS,
    durationSec,
    overallRate: rate?.overallRate,
    pacing: rate?.pacing ?? 'autocannon',
    expectAllowed,
    ca,
  };
}

async function throughput(ws: Workspace, gen: Generator, bare: Guard, ca: string, s: Settings, stream: StreamName): Promise<StreamResult> {
  const def = STREAMS[stream];
  const guard = await startGuard(ws, { logLevel: 'warn', stdout: 'file' });
  try {
    await checkVerdict(guard.url, stream, def.guardAllows, ca);
    await checkVerdict(bare.url, stream, true, ca);
    log(`${stream}: warm-up ${s.warmupSec} s each`);
    await gen.run(spec(guard.url, stream, def.guardAllows, ca, s.warmupSec));
    await gen.run(spec(bare.url, stream, true, ca, s.warmupSec));
    const guardRuns: Measured[] = [];
    const bareRuns: Measured[] = [];
    for (let i = 1; i <= RUNS; i++) {
      const g = await measure(gen, guard, spec(guard.url, stream, def.guardAllows, ca, s.runSec));
      warnAbout(`${stream} guard run ${i}`, g);
      guardRuns.push(g);
      const b = await measure(gen, bare, spec(bare.url, stream, true, ca, s.runSec));
      warnAbout(`${stream} bare run ${i}`, b);
      bareRuns.push(b);
      log(
        `${stream} run ${i}/${RUNS}: guard ${fmtRate(g.requestsPerSec)} req/s (p99 ${fmt(g.latencyMs.p99)} ms, ${g.cpu.processCores.server} cores, ${fmt(cpuPerReviewUs(g), 0)} µs CPU/review), ` +
          `bare ${fmtRate(b.requestsPerSec)} req/s (p99 ${fmt(b.latencyMs.p99)} ms, ${b.cpu.processCores.server} cores, ${fmt(cpuPerReviewUs(b), 0)} µs CPU/review)`,
      );
    }
    const gf = figures(guardRuns);
    const bf = figures(bareRuns);
    return {
      stream,
      guardRuns,
      bareRuns,
      guard: gf,
      bare: bf,
      ratio: bf.requestsPerSec > 0 ? gf.requestsPerSec / bf.requestsPerSec : 0,
      target: stream === 'non-agent' ? 0.95 : STREAM_NAMES.includes(stream) ? 0.8 : undefined,
    };
  } finally {
    await stopChild(guard.child);
  }
}

async function fixedRate(
  ws: Workspace,
  gen: Generator,
  bare: Guard,
  ca: string,
  s: Settings,
  stream: StreamName,
  pacing: LoadSpec['pacing'],
): Promise<FixedRateResult> {
  const def = STREAMS[stream];
  const rate = { overallRate: FIXED_RATE, pacing };
  const guard = await startGuard(ws, { logLevel: 'warn', stdout: 'file' });
  try {
    await checkVerdict(guard.url, stream, def.guardAllows, ca);
    await gen.run(spec(guard.url, stream, def.guardAllows, ca, s.warmupSec, rate));
    const g = await measure(gen, guard, spec(guard.url, stream, def.guardAllows, ca, s.runSec, rate));
    warnAbout(`${stream} guard at ${FIXED_RATE}/s (${pacing})`, g);
    await gen.run(spec(bare.url, stream, true, ca, s.warmupSec, rate));
    const b = await measure(gen, bare, spec(bare.url, stream, true, ca, s.runSec, rate));
    warnAbout(`${stream} bare at ${FIXED_RATE}/s (${pacing})`, b);
    log(`${stream} at ${FIXED_RATE}/s, ${pacing} pacing: guard p99 ${fmt(g.latencyMs.p99)} ms, bare p99 ${fmt(b.latencyMs.p99)} ms`);
    return { stream, pacing, guard: g, bare: b };
  } finally {
    await stopChild(guard.child);
  }
}

async function infoRun(ws: Workspace, gen: Generator, ca: string, s: Settings, stream: StreamName): Promise<Measured> {
  const def = STREAMS[stream];
  const guard = await startGuard(ws, { logLevel: 'info', stdout: 'null' });
  try {
    await checkVerdict(guard.url, stream, def.guardAllows, ca);
    await gen.run(spec(guard.url, stream, def.guardAllows, ca, s.warmupSec));
    const r = await measure(gen, guard, spec(guard.url, stream, def.guardAllows, ca, s.runSec));
    warnAbout(`${stream} guard at logLevel info`, r);
    log(`${stream} at logLevel info (stdout to /dev/null): ${fmtRate(r.requestsPerSec)} req/s, p99 ${fmt(r.latencyMs.p99)} ms`);
    return r;
  } finally {
    await stopChild(guard.child);
  }
}

async function profileStream(ws: Workspace, gen: Generator, ca: string, s: Settings, stream: StreamName): Promise<ProfileSummary> {
  const def = STREAMS[stream];
  const dir = join(outDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  const name = `guard-${stream}.cpuprofile`;
  const guard = await startGuard(ws, { logLevel: 'warn', stdout: 'file', cpuProfile: { dir, name } });
  let r: Measured;
  let warm: LoadResult;
  try {
    await checkVerdict(guard.url, stream, def.guardAllows, ca);
    warm = await gen.run(spec(guard.url, stream, def.guardAllows, ca, s.warmupSec));
    r = await measure(gen, guard, spec(guard.url, stream, def.guardAllows, ca, s.runSec), 0);
  } finally {
    await stopChild(guard.child);
  }
  log(`${stream} profiled: ${fmtRate(r.requestsPerSec)} req/s under the profiler; ${join(dir, name)}`);
  return summariseProfile(readProfile(join(dir, name)), 25, ws.guardRoot, answered(warm) + answered(r) + 1);
}

/** The bare server under the same profiler: what the stack costs without the guard. */
async function profileBare(ws: Workspace, gen: Generator, ca: string, s: Settings, stream: StreamName): Promise<ProfileSummary> {
  const dir = join(outDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  const name = `bare-${stream}.cpuprofile`;
  const bare = await startBare(ws, { dir, name });
  let r: Measured;
  let warm: LoadResult;
  try {
    await checkVerdict(bare.url, stream, true, ca);
    warm = await gen.run(spec(bare.url, stream, true, ca, s.warmupSec));
    r = await measure(gen, bare, spec(bare.url, stream, true, ca, s.runSec), 0);
  } finally {
    await stopChild(bare.child);
  }
  log(`bare server (${stream}) profiled: ${fmtRate(r.requestsPerSec)} req/s under the profiler; ${join(dir, name)}`);
  return summariseProfile(readProfile(join(dir, name)), 25, undefined, answered(warm) + answered(r) + 1);
}

/** Every request a server answered in a run (the +1 above is the verdict check). */
function answered(r: LoadResult): number {
  return r.responses2xx + r.mismatches + r.non2xx;
}

// ---------------------------------------------------------------- report

interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memory: string;
  readonly node: string;
  readonly kernel: string;
}

function machine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  let memory = 'unknown';
  try {
    memory = execFileSync('free', ['-h'], { encoding: 'utf8' }).trim();
  } catch {
    // not every system has free(1)
  }
  return { cpus: availableParallelism(), cpuModel: model, memory, node: process.version, kernel: `Linux ${release()}` };
}

function throughputTable(results: readonly StreamResult[]): string {
  const lines = [
    '| Stream | Guard req/s | Bare req/s | Guard / bare | Target | Met | Guard p50 / p99 (ms) | Bare p50 / p99 (ms) |',
    '|---|---:|---:|---:|---:|:-:|---:|---:|',
  ];
  for (const r of results) {
    lines.push(
      `| ${STREAMS[r.stream].title} | ${fmtRate(r.guard.requestsPerSec)} | ${fmtRate(r.bare.requestsPerSec)} | ${fmt(r.ratio)} | ${r.target === undefined ? '–' : `≥ ${r.target}`} | ${r.target === undefined ? '–' : r.ratio >= r.target ? 'yes' : 'no'} | ${fmt(r.guard.p50)} / ${fmt(r.guard.p99)} | ${fmt(r.bare.p50)} / ${fmt(r.bare.p99)} |`,
    );
  }
  return lines.join('\n');
}

function runsTable(results: readonly StreamResult[]): string {
  const lines = ['| Stream | Server | Run 1 req/s | Run 2 req/s | Run 3 req/s |', '|---|---|---:|---:|---:|'];
  for (const r of results) {
    lines.push(`| ${r.stream} | guard | ${r.guardRuns.map((x) => fmtRate(x.requestsPerSec)).join(' | ')} |`);
    lines.push(`| ${r.stream} | bare | ${r.bareRuns.map((x) => fmtRate(x.requestsPerSec)).join(' | ')} |`);
  }
  return lines.join('\n');
}

function fixedTable(results: readonly FixedRateResult[]): string {
  const lines = [
    '| Stream | Pacing | Server | Achieved req/s | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | autocannon p99 (ms) | p99 < 2 ms |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|:-:|',
  ];
  for (const r of results) {
    for (const [server, x] of [
      ['guard', r.guard],
      ['bare', r.bare],
    ] as const) {
      lines.push(
        `| ${r.stream} | ${r.pacing} | ${server} | ${fmtRate(x.requestsPerSec)} | ${fmt(x.latencyMs.p50)} | ${fmt(x.latencyMs.p99)} | ${fmt(x.latencyMs.p999)} | ${fmt(x.latencyMs.max)} | ${x.autocannonLatencyMs?.p99 ?? '–'} | ${server === 'guard' ? (meetsLatency(x) ? 'yes' : 'no') : '–'} |`,
      );
    }
  }
  return lines.join('\n');
}

/** p99 under 2 ms, with every request answered with the expected verdict. */
function meetsLatency(r: LoadResult): boolean {
  return r.responses2xx > 0 && r.errors + r.timeouts + r.non2xx + r.mismatches === 0 && r.latencyMs.p99 < 2;
}

function cpuTable(results: readonly StreamResult[]): string {
  const lines = [
    '| Stream | Server | Server CPU (cores) | Generator CPU (cores) | Others (cores) |',
    '|---|---|---:|---:|---:|',
  ];
  const m = (runs: readonly Measured[], pick: (c: CpuUsage) => number) => fmt(median(runs.map((r) => pick(r.cpu))));
  for (const r of results) {
    for (const [server, runs] of [
      ['guard', r.guardRuns],
      ['bare', r.bareRuns],
    ] as const) {
      lines.push(
        `| ${r.stream} | ${server} | ${m(runs, (c) => c.processCores.server ?? 0)} | ${m(runs, (c) => c.processCores.generator ?? 0)} | ${m(runs, (c) => c.foreignCores)} |`,
      );
    }
  }
  return lines.join('\n');
}

/**
 * The guard's CPU time per review at most this multiple of the bare server's (same stream,
 * same run): a figure that does not depend on how the generator shares the cores.
 */
const CPU_PER_REVIEW_TARGETS: Partial<Record<StreamName, number>> = {
  'non-agent': 1.1,
  'agent-denied': 1.6,
  'agent-allowed': 1.6,
};

/** µs of the server process's CPU (user + system) per review it answered in one run. */
function cpuPerReviewUs(run: Measured): number {
  return ((run.cpu.processSeconds.server ?? 0) * 1e6) / Math.max(1, answered(run));
}

function cpuPerReviewTable(results: readonly StreamResult[]): string {
  const lines = [
    '| Stream | Guard CPU per review (µs) | Bare CPU per review (µs) | Guard / bare | Target | Met |',
    '|---|---:|---:|---:|---:|:-:|',
  ];
  for (const r of results) {
    const guard = median(r.guardRuns.map(cpuPerReviewUs));
    const bare = median(r.bareRuns.map(cpuPerReviewUs));
    const ratio = guard / bare;
    const target = CPU_PER_REVIEW_TARGETS[r.stream];
    lines.push(
      `| ${r.stream} | ${fmt(guard, 0)} | ${fmt(bare, 0)} | ${fmt(ratio)} | ${target === undefined ? '–' : `≤ ${target}`} | ${target === undefined ? '–' : ratio <= target ? 'yes' : 'no'} |`,
    );
  }
  return lines.join('\n');
}

function infoTable(results: readonly InfoResult[]): string {
  const lines = [
    '| Stream | logLevel | req/s | p50 (ms) | p99 (ms) | Guard CPU (cores) | Guard CPU per review (µs) |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const row = (label: string, x: Measured) =>
      `| ${r.stream} | ${label} | ${fmtRate(x.requestsPerSec)} | ${fmt(x.latencyMs.p50)} | ${fmt(x.latencyMs.p99)} | ${fmt(x.cpu.processCores.server ?? 0)} | ${fmt(cpuPerReviewUs(x), 0)} |`;
    if (r.warnFirstRun) lines.push(row('warn (run 1 of the throughput table)', r.warnFirstRun));
    lines.push(row('info, stdout → /dev/null', r.info));
  }
  return lines.join('\n');
}

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

interface Context {
  readonly s: Settings;
  readonly m: Machine;
  readonly ws: Workspace;
  readonly gen: Generator;
  readonly ca: string;
  readonly started: Date;
  readonly sourceLine: string;
}

async function benchmark(c: Context): Promise<void> {
  const { s, m, ws, gen, ca, started, sourceLine } = c;
  const bare = await startBare(ws);
  try {
    newPhase('throughput');
    const results: StreamResult[] = [];
    for (const stream of [...s.streams, ...s.diagnostic]) results.push(await throughput(ws, gen, bare, ca, s, stream));
    newPhase(`fixed rate ${FIXED_RATE}/s`);
    const fixed: FixedRateResult[] = [];
    for (const pacing of ['autocannon', 'even'] as const) {
      for (const stream of s.streams) fixed.push(await fixedRate(ws, gen, bare, ca, s, stream, pacing));
    }
    newPhase('audit logging at info');
    const info: InfoResult[] = [];
    if (s.info) {
      for (const stream of ['agent-allowed', 'agent-allowed-fresh-agent'] as const) {
        if (!s.streams.includes(stream) && !s.diagnostic.includes(stream)) continue;
        info.push({
          stream,
          info: await infoRun(ws, gen, ca, s, stream),
          warnFirstRun: results.find((r) => r.stream === stream)?.guardRuns[0],
        });
      }
    }
    const measured = [...results.flatMap((r) => [...r.guardRuns, ...r.bareRuns]), ...fixed.flatMap((f) => [f.guard, f.bare])];
    const repeated = measured.reduce((n, r) => n + r.attempts - 1, 0);
    const disturbed = measured.filter((r) => r.cpu.foreignCores >= QUIET_CORES).length;

    const report = [
      `## Results (${s.quick ? 'QUICK' : 'full'} run, ${started.toISOString()})`,
      '',
      `${m.cpus} CPUs, ${m.cpuModel}; Node ${m.node}; ${m.kernel}. POST ${WEBHOOK_PATH} over TLS on loopback, autocannon -c ${CONNECTIONS}, warm-up ${s.warmupSec} s, median of ${RUNS} × ${s.runSec} s; guard at logLevel warn; ${sourceLine}.`,
      '',
      throughputTable(results),
      '',
      runsTable(results),
      '',
      `Measured runs repeated because other processes used ≥ ${QUIET_CORES} cores: ${repeated}; runs kept although disturbed: ${disturbed} of ${measured.length}.`,
      '',
      'CPU used during the runs (median of the runs; 2 cores in all):',
      '',
      cpuTable(results),
      '',
      "CPU time per review: each server process's CPU time (user + system, from /proc) over a run divided by the reviews it answered in it, median of the runs:",
      '',
      cpuPerReviewTable(results),
      '',
      `### p99 at a fixed ${FIXED_RATE} reviews/s (${CONNECTIONS} connections, ${s.runSec} s after ${s.warmupSec} s warm-up; pacing autocannon = overallRate ${FIXED_RATE}, even = one request every ${1000 / FIXED_RATE} ms)`,
      '',
      fixedTable(fixed),
      ...(info.length > 0 ? ['', '### Audit logging cost', '', infoTable(info)] : []),
      '',
    ].join('\n');
    process.stdout.write(`\n${report}`);
    writeFileSync(
      join(outDir, 'results.json'),
      `${JSON.stringify(
        {
          machine: m,
          source: ws.source,
          started,
          finished: new Date(),
          settings: { ...s, connections: CONNECTIONS, runs: RUNS, fixedRate: FIXED_RATE, path: WEBHOOK_PATH },
          throughput: results,
          fixedRate: fixed,
          info,
        },
        null,
        2,
      )}\n`,
    );
    log(`raw results in ${join(outDir, 'results.json')}`);
  } finally {
    await stopChild(bare.child);
  }
}

async function profiles(c: Context): Promise<void> {
  const { s, m, ws, gen, ca, started, sourceLine } = c;
  newPhase('CPU profiles');
  const profiled = [...s.streams, ...s.diagnostic];
  const summaries: Partial<Record<StreamName, ProfileSummary>> = {};
  for (const stream of profiled) summaries[stream] = await profileStream(ws, gen, ca, s, stream);
  const bareStream = s.streams[0] ?? 'non-agent';
  const bareProfile = await profileBare(ws, gen, ca, s, bareStream);
  writeFileSync(
    join(outDir, 'profile-summary.json'),
    `${JSON.stringify({ machine: m, source: ws.source, started, settings: s, profiles: summaries, bare: { stream: bareStream, profile: bareProfile } }, null, 2)}\n`,
  );
  process.stdout.write(`\n## CPU profiles (${sourceLine}; one ${s.runSec} s run each after a ${s.warmupSec} s warm-up)\n`);
  for (const stream of profiled) {
    const p = summaries[stream];
    if (p) process.stdout.write(`\n### Guard: ${STREAMS[stream].title}\n\n${formatSummary(p)}\n`);
  }
  process.stdout.write(`\n### Bare server: ${STREAMS[bareStream].title}\n\n${formatSummary(bareProfile)}\n`);
  log(`profiles in ${join(outDir, 'profiles')}, summaries in ${join(outDir, 'profile-summary.json')}`);
}

let workspaceDir: string | undefined;

async function main(): Promise<void> {
  const s = settingsFromArgs();
  const m = machine();
  const started = new Date();
  log(
    `${s.quick ? 'quick' : 'full'} run: warm-up ${s.warmupSec} s, ${RUNS} × ${s.runSec} s, -c ${CONNECTIONS}; streams ${[...s.streams, ...s.diagnostic].join(', ')}`,
  );
  log(`${m.cpus} CPUs (${m.cpuModel}), Node ${m.node}, ${m.kernel}: server and load generator share these cores`);
  mkdirSync(outDir, { recursive: true });
  const ws = createWorkspace();
  workspaceDir = ws.dir;
  const src = ws.source;
  const sourceLine = `guard code: commit ${src.commit.slice(0, 12)}${src.uncommitted.length > 0 ? ` plus ${src.uncommitted.length} uncommitted change(s) in src/` : ''}, src digest ${src.srcDigest}`;
  log(sourceLine);
  const gen = startGenerator();
  try {
    // The first start generates the certificates every later guard and the bare server use.
    await stopChild((await startGuard(ws, { logLevel: 'warn', stdout: 'file' })).child);
    const ca = readFileSync(join(ws.certs, 'ca.crt'), 'utf8');
    const context: Context = { s, m, ws, gen, ca, started, sourceLine };
    if (s.profile !== 'only') await benchmark(context);
    if (s.profile !== 'no') await profiles(context);
  } finally {
    await gen.close().catch(() => undefined);
    for (const child of children) await stopChild(child);
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGTERM');
    if (workspaceDir) rmSync(workspaceDir, { recursive: true, force: true });
    process.exit(130);
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
