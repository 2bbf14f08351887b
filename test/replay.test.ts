import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runReplay } from '../src/cli/replay.ts';
import { FileRecorder } from '../src/record/file-recorder.ts';
import { createRecorderMetrics } from '../src/record/recorder-metrics.ts';
import { recordLoss } from '../src/core/ledger-state.ts';
import { AGENT, type Review, review, scaleReview } from './helpers/fixtures.ts';
import { policies, policy, testGuard } from './helpers/guard.ts';
import { capturingLogger } from './helpers/telemetry.ts';

const AGENT_2 = { username: 'system:serviceaccount:agents:agent-2', groups: ['system:serviceaccounts', 'system:authenticated'] };

const RECORDED_POLICIES = policies(
  policy('cap', {
    mode: 'enforce',
    agents: { serviceAccounts: ['agents:agent-1'] },
    need: { static: 3, onUnavailable: 'hold' },
    limits: { headroom: 1, perWorkload: 10, step: 4, perFamily: 30, workloadsPerFamily: 4, rate: { instances: 12, per: '5m' } },
    underPressure: { window: '10m', limits: { step: 1 } },
  }),
  policy('watch', { mode: 'audit', agents: { serviceAccounts: ['agents:agent-1'] }, need: { static: 2 }, limits: { headroom: 0 } }),
  policy('batch', { mode: 'clamp', agents: { serviceAccounts: ['agents:agent-2'] }, need: { static: 2 }, limits: { headroom: 1, perWorkload: 6 } }),
);

/** A pseudo-random sequence that is the same on every run. */
function* seeded(seed: number): Generator<number> {
  let s = seed;
  for (;;) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    yield s / 2 ** 31;
  }
}

let dir = '';
let recordings: string[] = [];
let recordedLines = 0;

async function writePolicies(name: string, yaml: string): Promise<string> {
  const d = join(dir, name);
  await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
  await writeFile(join(d, 'policies.yaml'), yaml);
  return d;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-replay-'));
  const recorder = new FileRecorder({
    dir: join(dir, 'rec'),
    run: 'replay-test',
    maxFileBytes: 64 * 1024,
    maxFileAgeMs: 3_600_000,
    maxTotalBytes: 1 << 30,
    queueLength: 100_000,
    clock: { now: () => new Date(), monotonicMs: () => performance.now() },
    logger: capturingLogger().logger,
    metrics: createRecorderMetrics(new Registry()),
  });
  const guard = testGuard({ policies: RECORDED_POLICIES, recorder });
  const send = async (r: Review) => {
    await guard.review('validate', r);
    guard.clock.advance(15_000);
  };
  // Every kind the guard counts, a clone, a Scale of a parent never seen (a fallback), denials by several limits.
  for (const name of [
    'deployment-create-agent',
    'deployment-create-clone-agent',
    'statefulset-create-agent',
    'replicaset-create-agent',
    'replicationcontroller-create-agent',
    'job-create-agent-parallelism-5',
    'cronjob-create-agent',
    'daemonset-create-agent',
    'pod-create-agent',
    'hpa-create-agent-max-50',
    'statefulset-scale-agent-10',
  ]) {
    await send(review(name));
  }
  await send(scaleReview('never-seen', 1, 3));
  // Growth within the need (3), then back.
  await send(scaleReview('agent-web', 2, 3));
  await send(scaleReview('agent-web', 3, 2));
  const rnd = seeded(7);
  let at = 2;
  for (let i = 0; i < 60; i++) {
    // Halfway, the family loses pods: its underPressure limits apply for the next ten minutes.
    if (i === 30) {
      const now = guard.clock.now();
      await guard.ledger.transact(AGENT, (state) => ({
        result: undefined,
        next: recordLoss(state, 'lost-pod', now, now, guard.ledger.limits, 2).state,
      }));
    }
    const to = Math.floor((rnd.next().value ?? 0) * 14);
    await send(scaleReview('agent-web', at, to));
    // A retry loop: the same episode again, recorded as a duplicate.
    if (i % 7 === 0) await send(scaleReview('agent-web', at, to));
    const accepted = guard.lastAudit().verdict !== 'denied';
    if (accepted) at = to;
  }
  // The clamp policy: the mutating call holds 8, the validating call sees the clamped 3.
  const asAgent2 = (r: Review) => ({ ...r, request: { ...r.request, userInfo: AGENT_2 } });
  await guard.review('mutate', asAgent2(scaleReview('batch-web', 2, 8)));
  await send(asAgent2(scaleReview('batch-web', 2, 3)));
  await send(asAgent2(scaleReview('batch-web', 3, 9)));
  await recorder.close();
  recordings = (await readdir(join(dir, 'rec'))).sort().map((n) => join(dir, 'rec', n));
  const text = (await Promise.all(recordings.map((f) => readFile(f, 'utf8')))).join('');
  const lines = text.split('\n').filter((l) => l !== '');
  recordedLines = lines.length;
  // The recording holds decisions made under pressure (step 1), so replay must restore the losses.
  expect(lines.some((l) => l.includes('"limit":"step"') && l.includes('step 1'))).toBe(true);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function replay(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runReplay(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

interface JsonReplay {
  records: number;
  agents: {
    agent: string;
    reviews: number;
    changed: number;
    reworded: number;
    notReplayable: number;
    allowedToDenied: number;
    falseDenials: number;
    recorded: { aoc: number; score: number };
    replayed: { aoc: number; score: number };
    shown: unknown[];
  }[];
}

describe('replica-guard replay', () => {
  it('reproduces every recorded verdict exactly under the policies it was recorded with', async () => {
    expect(recordings.length).toBeGreaterThan(1);
    expect(recordedLines).toBeGreaterThan(70);
    const policiesDir = await writePolicies('same', RECORDED_POLICIES);
    const r = await replay('--policies', policiesDir, '-o', 'json', ...recordings);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as JsonReplay;
    expect(report.records).toBe(recordedLines);
    expect(report.agents.map((a) => a.agent)).toEqual(['system:serviceaccount:agents:agent-1', 'system:serviceaccount:agents:agent-2']);
    for (const a of report.agents) {
      expect({ agent: a.agent, changed: a.changed, reworded: a.reworded, shown: a.shown, notReplayable: a.notReplayable }).toEqual({
        agent: a.agent,
        changed: 0,
        reworded: 0,
        shown: [],
        notReplayable: 0,
      });
      expect(a.replayed).toEqual(a.recorded);
    }
    expect(report.agents.reduce((n, a) => n + a.reviews, 0)).toBe(recordedLines);
  });

  it('shows what a stricter policy changes: denials, the risk it avoids, and the growth it denies within the need', async () => {
    const stricter = RECORDED_POLICIES.replace('headroom: 1\n    perWorkload: 10', 'headroom: 0\n    perWorkload: 2');
    expect(stricter).not.toBe(RECORDED_POLICIES);
    const policiesDir = await writePolicies('stricter', stricter);
    const r = await replay('--policies', policiesDir, '-o', 'json', '--show', '3', ...recordings);
    expect(r.code).toBe(0);
    const agent1 = (JSON.parse(r.out) as JsonReplay).agents[0];
    expect(agent1?.changed).toBeGreaterThan(3);
    expect(agent1?.allowedToDenied).toBeGreaterThan(0);
    expect(agent1?.shown).toHaveLength(3);
    expect(agent1?.replayed.aoc).toBeLessThan(agent1?.recorded.aoc ?? 0);
    // perWorkload 2 denies 2 → 3 although the need is 3.
    expect(agent1?.falseDenials).toBeGreaterThan(0);

    const table = await replay('--policies', policiesDir, '--show', '3', ...recordings);
    expect(table.out).toMatch(/recorded allowed, now denied by cap \(\w+\)/);
    expect(table.out).toMatch(/\.\.\. and \d+ more changed verdicts/);
    expect(table.out).toMatch(/surplus stopped: \d+\.\d% under these policies, \d+\.\d% recorded/);
    expect(table.out).toMatch(/false denials: [1-9]\d* \(growth denied although the count stayed within the need\)/);
  });

  it('is deterministic: the same recording and policies print the same, byte for byte', async () => {
    const policiesDir = await writePolicies('stricter-2', RECORDED_POLICIES.replace('step: 4', 'step: 1'));
    const first = await replay('--policies', policiesDir, ...recordings);
    const second = await replay('--policies', policiesDir, ...recordings);
    expect(first.code).toBe(0);
    expect(second).toEqual(first);
  });

  it('answers --help, and names the file and line of a bad recording line', async () => {
    expect((await replay('--help')).code).toBe(0);
    expect(await replay(recordings[0] ?? '')).toMatchObject({ code: 2, err: expect.stringContaining('--policies DIR is required') });
    const broken = join(dir, 'broken.jsonl');
    const first = (await readFile(recordings[0] ?? '', 'utf8')).split('\n')[0] ?? '';
    await writeFile(broken, `${first}\n${first.replace('"decidedBy":"policies"', '"decidedBy":"magic"')}\n`);
    const policiesDir = await writePolicies('same-2', RECORDED_POLICIES);
    const r = await replay('--policies', policiesDir, broken);
    expect(r).toMatchObject({ code: 1, err: expect.stringContaining(`${broken}:2: facts.decidedBy:`) });
    const skipped = await replay('--policies', policiesDir, '--skip-bad-lines', broken);
    expect(skipped.code).toBe(0);
    expect(skipped.out).toContain('1 recorded reviews of 1 agents: 0 verdicts change, 0 false denials, 1 bad lines skipped.');
    await writeFile(join(dir, 'empty.jsonl'), '');
    expect(await replay('--policies', policiesDir, join(dir, 'empty.jsonl'))).toMatchObject({ code: 2 });
  });
});
