import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCheck } from './check.ts';
import type { CliIo } from './check.ts';

const policy = (name: string, agents = 'serviceAccounts: ["agents:*"]'): string =>
  `apiVersion: replica-guard.io/v1alpha1\nkind: ReplicaPolicy\nmetadata:\n  name: ${name}\nspec:\n  mode: enforce\n  agents: {${agents}}\n`;

function collectingIo(): CliIo & { out_: string[]; err_: string[] } {
  const out_: string[] = [];
  const err_: string[] = [];
  return { out_, err_, out: (l) => out_.push(l), err: (l) => err_.push(l) };
}

describe('runCheck', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-check-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 and prints a summary for good files', async () => {
    await writeFile(join(dir, 'a.yaml'), `${policy('a')}---\n${policy('b')}`);
    await writeFile(join(dir, 'c.yml'), policy('c'));
    const io = collectingIo();
    expect(await runCheck([dir], io)).toBe(0);
    expect(io.out_).toEqual(['3 policies in 2 files: 0 errors, 0 warnings']);
    expect(io.err_).toEqual([]);
  });

  it('prints warnings but still exits 0', async () => {
    await writeFile(join(dir, 'a.yaml'), policy('a', 'serviceAccounts: ["agent-1"]'));
    const io = collectingIo();
    expect(await runCheck([dir], io)).toBe(0);
    expect(io.out_).toHaveLength(2);
    expect(io.out_[0]).toMatch(/a\.yaml: document 1 \(line 7\): warning: spec\.agents\.serviceAccounts\[0\]: /);
    expect(io.out_[1]).toBe('1 policy in 1 file: 0 errors, 1 warning');
  });

  it('exits 1 and prints every problem when any error is found', async () => {
    await writeFile(join(dir, 'a.yaml'), policy('twin'));
    await writeFile(join(dir, 'b.yaml'), `${policy('twin')}---\n${policy('x').replace('mode: enforce', 'mode: block')}`);
    const io = collectingIo();
    expect(await runCheck([dir], io)).toBe(1);
    expect(io.out_).toEqual([
      `${join(dir, 'b.yaml')}: document 1 (line 4): metadata.name: a policy named "twin" is already defined in ${join(dir, 'a.yaml')} document 1 (line 4); policy names must be unique`,
      `${join(dir, 'b.yaml')}: document 2 (line 14): spec.mode: mode must be one of enforce, clamp, audit (got "block")`,
      '2 policies in 2 files: 2 errors, 0 warnings',
    ]);
  });

  it('exits 2 when no policy file is found', async () => {
    const io = collectingIo();
    expect(await runCheck([dir], io)).toBe(2);
    expect(io.err_).toEqual([`no policy files (*.yaml, *.yml) found in ${dir}`]);

    const missing = collectingIo();
    expect(await runCheck([join(dir, 'nope')], missing)).toBe(2);
    expect(missing.out_).toEqual([`${join(dir, 'nope')}: cannot read: no such file or directory`]);
  });

  it('checks policies/ in the working directory by default', async () => {
    await mkdir(join(dir, 'policies'));
    await writeFile(join(dir, 'policies', 'a.yaml'), policy('a'));
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const io = collectingIo();
      expect(await runCheck([], io)).toBe(0);
      expect(io.out_).toEqual(['1 policy in 1 file: 0 errors, 0 warnings']);
    } finally {
      process.chdir(cwd);
    }
  });
});
