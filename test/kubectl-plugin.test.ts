import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './helpers/process.ts';

// kubectl finds plugins as executables named kubectl-<name> on the PATH (kubectl-replica_guard
// for `kubectl replica-guard`); npm links each name in package.json's bin there.

const run = promisify(execFile);

describe('the kubectl plugin', () => {
  it('is installed under kubectl-replica_guard and answers every command the way replica-guard does', async () => {
    const pkg = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin['kubectl-replica_guard']).toBe(pkg.bin['replica-guard']);
    const dir = await mkdtemp(join(tmpdir(), 'rg-plugin-'));
    try {
      // As npm links it: a symlink with the plugin's name to the launcher.
      const plugin = join(dir, 'kubectl-replica_guard');
      await symlink(join(PROJECT_ROOT, pkg.bin['kubectl-replica_guard'] ?? ''), plugin);
      for (const command of ['freeze', 'unfreeze', 'break-glass', 'exempt', 'switches', 'shutdown', 'restore', 'doctor']) {
        const { stdout } = await run(process.execPath, [plugin, command, '--help'], { cwd: dir });
        expect(stdout).toContain('--kubeconfig');
        expect(stdout).toContain('--context');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
