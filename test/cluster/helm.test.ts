import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { clusterTools } from '../setup/cluster-tools.ts';

const run = promisify(execFile);

describe('helm, built from its pinned module', () => {
  it('runs and reports the pinned release', async () => {
    const tools = clusterTools();
    const { stdout } = await run(tools.helm, ['version', '--template', '{{ .Version }}'], { env: { ...process.env, HELM_CACHE_HOME: '/tmp/rg-helm-cache' } });
    expect(stdout.trim()).toBe(tools.helmVersion);
  });
});
