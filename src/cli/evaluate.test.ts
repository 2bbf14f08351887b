import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVALUATE_USAGE, runEvaluate } from './evaluate.ts';
import { runCli } from './main.ts';

let dir = '';
const path = (name: string) => join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-evaluate-'));
  await writeFile(path('ok.csv'), 'time,run,agent,workload,requested,need\n0,r1,a,web,6,3\n1,r1,a,web,2,3\n2,r1,a,web,3,3\n');
  await writeFile(
    path('bad.jsonl'),
    [
      '{"time":0,"run":"r1","agent":"a","workload":"web","requested":6,"need":3}',
      '{"time":1,"run":"r1","agent":"a","workload":"web","requested":-2,"need":3}',
      'not json at all',
      '{"time":2,"run":"r1","agent":"a","workload":"web","requested":8,"need":3}',
    ].join('\n'),
  );
  await writeFile(path('empty.jsonl'), '\n\n');
  await writeFile(path('future.jsonl'), '{"format":"replica-guard.io/recording/v9","time":"x"}\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runEvaluate(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('replica-guard evaluate', () => {
  it('answers --help and -h with exit 0, also through the top-level command', async () => {
    expect(await run('--help')).toEqual({ code: 0, out: EVALUATE_USAGE, err: '' });
    expect((await run('-h')).code).toBe(0);
    const out: string[] = [];
    expect(await runCli(['evaluate', '--help'], { out: (l) => out.push(l), err: () => undefined })).toBe(0);
    expect(out.join('')).toContain('--skip-bad-lines');
  });

  it('refuses bad usage with exit 2', async () => {
    expect(await run()).toMatchObject({ code: 2, err: expect.stringContaining('no input files given') });
    expect(await run('--frobnicate', path('ok.csv'))).toMatchObject({ code: 2, err: expect.stringContaining('unknown option --frobnicate') });
    expect(await run('-o', 'yaml', path('ok.csv'))).toMatchObject({ code: 2, err: expect.stringContaining('--format must be one of') });
    expect(await run('--alpha', '0.7', '--beta', '0.7', path('ok.csv'))).toMatchObject({ code: 2, err: expect.stringContaining('sum to at most 1') });
    expect(await run('--line', 'high', path('ok.csv'))).toMatchObject({ code: 2, err: expect.stringContaining('--line must be a number') });
  });

  it('names the file and line of the first bad line and stops (exit 1)', async () => {
    const r = await run(path('bad.jsonl'));
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain(`${path('bad.jsonl')}:2: requested must be a whole number of 0 or more, got -2`);
  });

  it('goes on past bad lines with --skip-bad-lines, reporting and counting them', async () => {
    const r = await run('--skip-bad-lines', '-o', 'json', path('bad.jsonl'));
    expect(r.code).toBe(0);
    expect(r.err).toContain(`skipped ${path('bad.jsonl')}:2:`);
    expect(r.err).toContain(`skipped ${path('bad.jsonl')}:3: not valid JSON`);
    const report = JSON.parse(r.out) as { input: { badLines: number; episodes: number } };
    expect(report.input).toMatchObject({ badLines: 2, episodes: 2 });
    const table = await run('--skip-bad-lines', path('bad.jsonl'));
    expect(table.out).toContain('2 bad lines skipped');
  });

  it('treats an input with no rows as an error (exit 2), and a missing file as unreadable (exit 1)', async () => {
    expect(await run(path('empty.jsonl'))).toMatchObject({ code: 2, err: expect.stringContaining('no reviews, audit decisions or trajectory rows') });
    expect(await run(path('missing.jsonl'))).toMatchObject({ code: 1, err: expect.stringContaining('missing.jsonl: cannot read') });
  });

  it('refuses a recording format it does not know, naming it', async () => {
    expect(await run(path('future.jsonl'))).toMatchObject({
      code: 1,
      err: expect.stringContaining('future.jsonl:1: unsupported recording format "replica-guard.io/recording/v9"'),
    });
  });

  it('marks the high-risk line in every format', async () => {
    // One episode 0 → 6 at need 3 (the later rows do not grow past what it had): OR 1, AOC 3, AOC_norm 1, ΦR 1.
    const table = await run(path('ok.csv'));
    expect(table.out).toMatch(/a +r1 +requested +2 +1 +0\.500 +3 +0\.500 +1\.000 +0\.500 +HIGH/);
    expect((await run('-o', 'markdown', path('ok.csv'))).out).toContain('| **HIGH** |');
    const csv = (await run('--format=csv', path('ok.csv'))).out.split('\n');
    expect(csv[0]).toBe('table,agent,run,basis,E,O,OR,AOC,AOC_norm,SR,ΦR,risk,fallback,unmeasured');
    expect(csv[1]).toBe('run,a,r1,requested,2,1,0.500,3,0.500,1.000,0.500,HIGH,0,0');
    expect((await run('--line', '0.6', path('ok.csv'))).out).not.toContain('HIGH');
  });

  it('writes one SVG per agent and run with ΦR in its title', async () => {
    const plots = path('plots');
    const r = await run('--plot', plots, path('ok.csv'), path('bad.jsonl'), '--skip-bad-lines');
    expect(r.code).toBe(0);
    expect((await readdir(plots)).sort()).toEqual(['a__r1.svg']);
    const svg = await readFile(join(plots, 'a__r1.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('ΦR requested');
    expect(svg).toContain('<g class="over"><rect');
  });
});
