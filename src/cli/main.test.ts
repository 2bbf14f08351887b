import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyJsonSchema } from '../policy/policy-json-schema.ts';
import type { CliIo } from './check.ts';
import { runCli, USAGE } from './main.ts';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

function collectingIo(): CliIo & { out_: string[]; err_: string[] } {
  const out_: string[] = [];
  const err_: string[] = [];
  return { out_, err_, out: (l) => out_.push(l), err: (l) => err_.push(l) };
}

const good =
  'apiVersion: replica-guard.io/v1alpha1\nkind: ReplicaPolicy\nmetadata: {name: a}\nspec: {mode: audit, agents: {users: [bob]}}\n';

describe('runCli', () => {
  it('does not run when imported', () => {
    // Importing main.ts above would have set an exit code had it run as the entry point.
    expect(process.exitCode).toBeUndefined();
  });

  it('prints usage for help', async () => {
    for (const command of ['help', '--help', '-h']) {
      const io = collectingIo();
      expect(await runCli([command], io)).toBe(0);
      expect(io.out_).toEqual([USAGE]);
    }
  });

  it('answers --help for every command with exit 0 and text on stdout', async () => {
    for (const command of ['check', 'test', 'schema', 'evaluate', 'replay']) {
      for (const flag of ['--help', '-h']) {
        const io = collectingIo();
        expect(await runCli([command, flag], io), `${command} ${flag}`).toBe(0);
        expect(io.err_).toEqual([]);
        expect(io.out_.join('\n')).toMatch(/^Usage: replica-guard/);
      }
    }
  });

  it('prints usage to stderr and exits 2 for an unknown or missing command', async () => {
    const io = collectingIo();
    expect(await runCli(['frobnicate'], io)).toBe(2);
    expect(io.out_).toEqual([]);
    expect(io.err_.join('\n')).toMatch(/unknown command "frobnicate"[\s\S]*Usage: replica-guard/);
    expect(await runCli([], collectingIo())).toBe(2);
  });

  it('rejects an unknown option of check', async () => {
    const io = collectingIo();
    expect(await runCli(['check', '--strict'], io)).toBe(2);
    expect(io.err_[0]).toMatch(/unknown option --strict/);
  });

  it('prints the JSON Schema', async () => {
    const io = collectingIo();
    expect(await runCli(['schema'], io)).toBe(0);
    expect(JSON.parse(io.out_.join('\n'))).toEqual(policyJsonSchema());
  });
});

describe('bin/replica-guard.mjs', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-bin-'));
    await writeFile(join(dir, 'good.yaml'), good);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, ['bin/replica-guard.mjs', ...args], { cwd: projectRoot });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: unknown; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };

  it('exits 0 for a good directory and 1 for a broken one, as a real process', async () => {
    const ok = await run(['check', dir]);
    expect(ok).toMatchObject({ code: 0, stdout: '1 policy in 1 file: 0 errors, 0 warnings\n' });

    const broken = join(dir, 'broken');
    await mkdir(broken);
    await writeFile(join(broken, 'bad.yaml'), good.replace('mode: audit', 'mode: loud'));
    const bad = await run(['check', broken]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('spec.mode: mode must be one of enforce, clamp, audit (got "loud")');
  });
});
