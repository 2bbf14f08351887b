import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { FakeApiServer } from '../fake-apiserver/fake-apiserver.ts';
import { ROOMY_POLICY } from '../helpers/cluster-guards.ts';
import { scaleReview } from '../helpers/fixtures.ts';
import { writeKubeconfig } from '../helpers/kubeconfig.ts';
import { type GuardProcess, httpsPost, PROJECT_ROOT, startGuardProcess } from '../helpers/process.ts';

// Two guard processes, as npm start runs them with --kubeconfig, and the CLI as its own
// process (bin/replica-guard.mjs, what npx and the kubectl plugin run): a freeze and an
// unfreeze reach both processes within 5 seconds.

const run = promisify(execFile);
let fake: FakeApiServer;
let dir: string;
let kubeconfig: string;
let ca: string;
const guards: GuardProcess[] = [];

beforeAll(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  dir = await mkdtemp(join(tmpdir(), 'rg-switch-processes-'));
  kubeconfig = await writeKubeconfig(dir, fake.url);
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'policies', 'policy.yaml'), ROOMY_POLICY);
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    YAML.stringify({
      webhook: { port: 0 },
      ops: { port: 0 },
      policies: { dir: join(dir, 'policies') },
      tls: { dir: join(dir, 'certs') },
      view: { bookmarkInterval: '100ms', stallFactor: 5 },
      doctor: { enabled: false },
    }),
  );
  // One after the other: the first generates the certificates, the second reuses them.
  for (let i = 0; i < 2; i++) guards.push(await startGuardProcess(['--config', config, '--kubeconfig', kubeconfig]));
  ca = await readFile(join(dir, 'certs', 'ca.crt'), 'utf8');
}, 60_000);
afterAll(async () => {
  for (const g of guards) await g.stop();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

async function allowedBy(g: GuardProcess): Promise<boolean> {
  const answer = await httpsPost(`${g.webhookUrl}/validate?timeout=10s`, scaleReview('web', 1, 2), { ca });
  expect(answer.status).toBe(200);
  return (JSON.parse(answer.body) as { response: { allowed: boolean } }).response.allowed;
}

async function bothWithin5s(expected: boolean): Promise<void> {
  const started = Date.now();
  for (const g of guards) {
    await expect.poll(() => allowedBy(g), { timeout: Math.max(100, 5000 - (Date.now() - started)), interval: 100 }).toBe(expected);
  }
}

const cli = (...args: string[]) => run(process.execPath, [join(PROJECT_ROOT, 'bin/replica-guard.mjs'), ...args, '--kubeconfig', kubeconfig], { cwd: dir });

describe('freeze across two guard processes', () => {
  it('reaches both within 5 s, and so does unfreeze', async () => {
    await bothWithin5s(true);
    const frozen = await cli('freeze', '--agent', 'agents:agent-1', '--reason', 'drill');
    expect(frozen.stdout).toContain('freeze.agent.agents.agent-1 set in ConfigMap replica-guard/replica-guard-switches');
    await bothWithin5s(false);
    await cli('unfreeze', '--agent', 'agents:agent-1');
    await bothWithin5s(true);
    // Each process logged the switch being set and cleared: the audit of the switch itself
    // (its lines reach stdout within 100 ms).
    for (const g of guards) {
      await expect
        .poll(() => g.lines.filter((l) => l.msg === 'safety switch set' || l.msg === 'safety switch cleared').map((l) => l.msg))
        .toEqual(['safety switch set', 'safety switch cleared']);
    }
  }, 30_000);
});
