import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { runEvaluate } from '../src/cli/evaluate.ts';
import { assessRisk } from '../src/core/risk.ts';
import { FileRecorder } from '../src/record/file-recorder.ts';
import { createRecorderMetrics } from '../src/record/recorder-metrics.ts';
import { AGENT, review, scaleReview } from './helpers/fixtures.ts';
import { episodesOf, policy, testGuard } from './helpers/guard.ts';
import { capturingLogger, testClock } from './helpers/telemetry.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function evaluateJson(files: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runEvaluate(['-o', 'json', ...files], { out: (l) => out.push(l), err: (l) => err.push(l) });
  expect({ code, err }).toEqual({ code: 0, err: [] });
  return JSON.parse(out.join('\n')) as { runs: { agent: string; run: string; risk: unknown }[]; input: { episodes: number } };
}

describe('evaluate on what the guard wrote', () => {
  it('gives the live figures for the same episodes, from the recording and from the audit log', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rg-evaluate-recording-'));
    dirs.push(dir);
    const recorder = new FileRecorder({
      dir: join(dir, 'rec'),
      run: 'sandbox-1',
      maxFileBytes: 1 << 20,
      maxFileAgeMs: 3_600_000,
      maxTotalBytes: 1 << 24,
      queueLength: 1000,
      clock: testClock(),
      logger: capturingLogger().logger,
      metrics: createRecorderMetrics(new Registry()),
    });
    const guard = testGuard({
      policies: policy('cap', { mode: 'enforce', need: { static: 3 }, limits: { headroom: 1 } }),
      recorder,
    });
    await guard.review('validate', review('deployment-create-agent')); // 0 → 2, allowed
    await guard.review('validate', scaleReview('agent-web', 2, 10)); // denied
    await guard.review('validate', scaleReview('agent-web', 2, 10)); // the same episode again
    await guard.review('validate', scaleReview('agent-web', 2, 4)); // allowed, 1 over the need
    await guard.review('validate', scaleReview('agent-web', 4, 6)); // denied
    await guard.review('validate', scaleReview('agent-web', 4, 1)); // not growth
    await recorder.close();

    const live = assessRisk(await episodesOf(guard));
    expect(live.requested).toMatchObject({ episodes: 4, overuseEpisodes: 3, aoc: 7 + 1 + 3 });
    // Admitted: 2 (0 over), 2 (denied), 4 (1 over), 4 (denied 4 → 6 leaves 4: 1 over).
    expect(live.admitted).toMatchObject({ episodes: 4, overuseEpisodes: 2, aoc: 2 });

    const recordings = (await readdir(join(dir, 'rec'))).map((n) => join(dir, 'rec', n));
    const fromRecording = await evaluateJson(recordings);
    expect(fromRecording.input.episodes).toBe(4);
    expect(fromRecording.runs).toEqual([{ agent: AGENT, run: 'sandbox-1', risk: live, high: expect.any(Object) }]);

    const log = join(dir, 'guard.log');
    await writeFile(log, guard.lines.map((l) => JSON.stringify(l)).join('\n'));
    const fromAudit = await evaluateJson([log]);
    expect(fromAudit.runs).toEqual([{ agent: AGENT, run: 'guard', risk: live, high: expect.any(Object) }]);
  });
});
