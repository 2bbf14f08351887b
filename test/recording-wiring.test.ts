import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { configSchema } from '../src/config.ts';
import { assembleGuard } from '../src/guard.ts';
import { review } from './helpers/fixtures.ts';
import { policy } from './helpers/guard.ts';
import { capturingLogger, parseExposition, sampleValue } from './helpers/telemetry.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('record.dir in the assembled guard', () => {
  it('records what the validating webhook decides, counts it in /metrics, and writes everything out on close', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rg-record-wiring-'));
    dirs.push(root);
    await writeFile(join(root, 'p.yaml'), policy('cap', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { perWorkload: 5 } }));
    const config = configSchema.parse({
      webhook: { port: 0 },
      ops: { port: 0 },
      tls: { dir: join(root, 'certs') },
      policies: { dir: root, pollInterval: '1h' },
      record: { dir: join(root, 'recordings'), run: 'wired', maxFileSize: '1Mi' },
    });
    const guard = await assembleGuard(config, { logger: capturingLogger('warn').logger, clock: systemClock });
    try {
      for (const name of ['deployment-patch-merge-agent-10', 'deployment-create-agent', 'deployment-create-admin']) {
        const res = await guard.app.webhook.inject({ method: 'POST', url: '/validate', payload: review(name) });
        expect(res.statusCode).toBe(200);
      }
    } finally {
      await guard.close();
    }
    // The registry outlives the servers: what close() wrote is counted.
    expect(sampleValue(parseExposition(await guard.metrics.registry.metrics()), 'replica_guard_recording_records_total')).toBe(2);
    const files = await readdir(join(root, 'recordings'));
    expect(files).toHaveLength(1);
    const lines = (await readFile(join(root, 'recordings', files[0] ?? ''), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { run: string; verdict: { decision: string } }).verdict.decision)).toEqual(['denied', 'allowed']);
    expect(lines.every((l) => (JSON.parse(l) as { run: string }).run === 'wired')).toBe(true);
  });
});
