import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadSource } from '../src/load/load-source.ts';
import { FileRecorder } from '../src/record/file-recorder.ts';
import { createRecorderMetrics } from '../src/record/recorder-metrics.ts';
import { RECORDING_FORMAT, type ReviewRecord } from '../src/record/review-record.ts';
import { review, scaleReview } from './helpers/fixtures.ts';
import { policy, testGuard } from './helpers/guard.ts';
import { capturingLogger, testClock } from './helpers/telemetry.ts';

const SECRET = 's3cr3t-Value-7f1e';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function recordingGuard(options: { loadSource?: LoadSource; deadlineMarginMs?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'rg-recording-'));
  dirs.push(dir);
  const clock = testClock();
  const recorder = new FileRecorder({
    dir,
    run: 'trial-1',
    maxFileBytes: 1 << 20,
    maxFileAgeMs: 3_600_000,
    maxTotalBytes: 1 << 24,
    queueLength: 1000,
    clock,
    logger: capturingLogger().logger,
    metrics: createRecorderMetrics(new Registry()),
  });
  const guard = testGuard({
    policies: policy('cap', { mode: 'enforce', need: { static: 3 }, limits: { headroom: 1, perWorkload: 10 } }),
    recorder,
    ...options,
  });
  const read = async (): Promise<{ text: string; records: ReviewRecord[] }> => {
    await recorder.close();
    const names = (await readdir(dir)).sort();
    const text = (await Promise.all(names.map((n) => readFile(join(dir, n), 'utf8')))).join('');
    return { text, records: text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ReviewRecord) };
  };
  return { guard, read };
}

describe('recording agent reviews', () => {
  it('records what the validating webhook decides, with its facts, and never a dry run or a mutating call', async () => {
    const { guard, read } = await recordingGuard();
    await guard.review('mutate', review('deployment-create-agent'));
    expect((await guard.review('validate', review('deployment-create-agent'))).allowed).toBe(true);
    expect((await guard.review('validate', scaleReview('agent-web', 2, 10))).allowed).toBe(false);
    await guard.review('validate', review('deployment-dryrun-scale-agent-10'));
    const { records } = await read();

    expect(records).toHaveLength(2);
    const [create, scale] = records;
    expect(create).toMatchObject({
      format: RECORDING_FORMAT,
      run: 'trial-1',
      webhook: 'validate',
      agent: 'system:serviceaccount:agents:agent-1',
      policies: [{ name: 'cap', mode: 'enforce' }],
      verdict: { decision: 'allowed', growth: true, from: 0, requested: 2, admitted: 2, need: 3, needSource: 'static', episode: 'recorded' },
    });
    expect(create?.policies[0]?.version).toMatch(/^[0-9a-f]{12}$/);
    expect(create?.facts.policies?.[0]).toMatchObject({ need: { kind: 'measured', value: 3, source: 'static' }, family: { workloads: 0 } });
    expect(scale).toMatchObject({
      request: { subResource: 'scale', name: 'agent-web' },
      verdict: { decision: 'denied', policy: 'cap', limit: 'need', from: 2, requested: 10, admitted: 2, allowance: 4 },
    });
    // A Scale is interpreted against its parent: the recording keeps the parent the view showed.
    expect(scale?.facts.workloads).toEqual([
      expect.objectContaining({ ref: expect.objectContaining({ kind: 'Deployment', name: 'agent-web' }), count: expect.objectContaining({ steady: 2 }) }),
    ]);
    expect(scale?.verdict.message).toContain('asked for 10');
  });

  it('never writes environment values, command lines, or annotations other than replica-guard.io/*', async () => {
    const { guard, read } = await recordingGuard();
    const container = 'object.spec.template.spec.containers';
    await guard.review(
      'validate',
      review('deployment-create-agent', {
        annotations: {
          'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ env: SECRET }),
          'replica-guard.io/justification': 'the queue is long',
        },
        set: [
          [`${container}.0.env`, [{ name: 'API_KEY', value: SECRET }]],
          [`${container}.0.args`, [`--token=${SECRET}`]],
          [`${container}.0.command`, ['/bin/agent', SECRET]],
          ['object.spec.template.metadata.annotations', { 'vault.example/token': SECRET }],
          ['object.spec.template.spec.volumes', [{ name: 'v', secret: { secretName: SECRET } }]],
        ],
      }),
    );
    const { text, records } = await read();
    expect(records).toHaveLength(1);
    expect(text).not.toContain(SECRET);
    const object = records[0]?.request.object as { metadata: unknown; spec: { replicas: number; template: { spec: unknown } } };
    expect(object.metadata).toEqual({
      name: 'agent-web',
      namespace: 'agents',
      uid: expect.any(String),
      annotations: { 'replica-guard.io/justification': 'the queue is long' },
    });
    expect(object.spec.replicas).toBe(2);
    expect(object.spec.template.spec).toEqual({
      serviceAccountName: 'agent-1',
      serviceAccount: 'agent-1',
      containers: [{ name: 'agent', image: 'registry.example/agent:1.0' }],
    });
  });

  it('records a review the deadline decided once, as decided by the deadline, and not again when the facts arrive late', async () => {
    let settled = () => undefined as void;
    const late = new Promise<void>((r) => (settled = r));
    // Answers the need after the deadline has answered: the decision that follows is never sent.
    const slow: LoadSource = {
      need: () =>
        new Promise((resolve) =>
          setTimeout(() => {
            resolve({ kind: 'measured', value: 3, source: 'slow' });
            setTimeout(settled, 50);
          }, 400),
        ),
    };
    const { guard, read } = await recordingGuard({ loadSource: slow, deadlineMarginMs: 1_800 });
    const answer = await guard.review('validate', scaleReview('agent-web', 2, 3), 'timeout=2s');
    expect(answer.status?.message).toContain('RG_ERR_DEADLINE');
    await late;
    const { records } = await read();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      facts: { decidedBy: 'deadline', policies: null },
      verdict: { decision: 'denied', code: 'RG_ERR_DEADLINE', growth: true, fallback: true },
    });
  });
});
