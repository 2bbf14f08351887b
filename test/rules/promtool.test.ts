import { execFile } from 'node:child_process';
import { access, constants, copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { GENERATED_RULE_FILES, renderRiskRules } from '../../src/telemetry/risk-rules.ts';

/** Debian's prometheus package ships it; .ci/run installs that package. */
const PROMTOOL = '/usr/bin/promtool';
const ROOT = join(import.meta.dirname, '..', '..');
const HERE = import.meta.dirname;
const SHIPPED = join(ROOT, 'charts/replica-guard/prometheus-rules.yaml');

interface Run {
  readonly code: number;
  readonly output: string;
}

/** Runs promtool; resolves with its exit code and its stdout and stderr together. */
function promtool(args: readonly string[], cwd = ROOT): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(PROMTOOL, [...args], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, output: `${stdout}${stderr}` });
    });
  });
}

beforeAll(async () => {
  await access(PROMTOOL, constants.X_OK).catch(() => {
    throw new Error(`${PROMTOOL} is missing: apt-get install -y --no-install-recommends prometheus (as .ci/run does)`);
  });
});

describe('the generated rules files', () => {
  it.each(GENERATED_RULE_FILES)('$path is what the generator writes for window $window', async ({ path, window }) => {
    const committed = await readFile(join(ROOT, path), 'utf8');
    expect(committed, `${path} differs from src/telemetry/risk-rules.ts: run npm run rules`).toBe(renderRiskRules({ window }));
  });
});

describe('promtool check rules', () => {
  it.each(GENERATED_RULE_FILES)('accepts $path', async ({ path }) => {
    const run = await promtool(['check', 'rules', path]);
    expect(run.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(run.code, run.output).toBe(0);
  });

  it('accepts other windows and weights from the same generator', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rg-rules-'));
    try {
      const file = join(dir, 'rules.yaml');
      await writeFile(file, renderRiskRules({ window: '90m', alpha: 0.7, beta: 0.3, highRiskLine: 0.4 }));
      const run = await promtool(['check', 'rules', file]);
      expect(run.code, run.output).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('promtool test rules', async () => {
  const files = (await readdir(HERE)).filter((f) => f.endsWith('.promtool.yaml')).sort();

  it('has unit tests for the 1m variant and for the shipped file', async () => {
    const targets = await Promise.all(
      files.map(async (f) => (YAML.parse(await readFile(join(HERE, f), 'utf8')) as { rule_files: string[] }).rule_files),
    );
    expect(targets.flat().map((p) => join(HERE, p))).toEqual(expect.arrayContaining([SHIPPED, join(HERE, 'risk-rules-1m.yaml')]));
  });

  it.each(files)('%s passes', async (file) => {
    const run = await promtool(['test', 'rules', file], HERE);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain('SUCCESS');
  });

  describe('a wrong expectation fails (the tests compare what they claim to)', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'rg-promtool-'));
      await copyFile(join(HERE, 'risk-rules-1m.yaml'), join(dir, 'risk-rules-1m.yaml'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    interface Sample {
      value: number;
    }
    interface Alert {
      exp_labels: Record<string, string>;
    }
    interface TestFile {
      tests: { promql_expr_test?: { exp_samples: Sample[] }[]; alert_rule_test?: { exp_alerts: Alert[] }[] }[];
    }

    async function failsWith(mutate: (t: TestFile) => void): Promise<string> {
      const doc = YAML.parse(await readFile(join(HERE, 'risk-profiles.promtool.yaml'), 'utf8')) as TestFile;
      mutate(doc);
      await writeFile(join(dir, 'mutated.promtool.yaml'), YAML.stringify(doc));
      const run = await promtool(['test', 'rules', 'mutated.promtool.yaml'], dir);
      expect(run.code).toBe(1);
      return run.output;
    }

    const headline = (t: TestFile) => {
      const first = t.tests[0];
      if (!first) throw new Error('no headline test');
      return first;
    };

    it('a recorded value off by 0.01', async () => {
      const output = await failsWith((t) => {
        const sample = headline(t).promql_expr_test?.find((e) => e.exp_samples.some((s) => s.value === 0.6666666666666666))?.exp_samples[1];
        if (!sample) throw new Error('no ΦR sample of 2/3');
        sample.value = 0.6766666666666666;
      });
      expect(output).toContain('FAILED');
    });

    it('an alert expected on the wrong basis', async () => {
      const output = await failsWith((t) => {
        const alert = headline(t).alert_rule_test?.at(-1)?.exp_alerts[0];
        if (!alert) throw new Error('no expected alert');
        alert.exp_labels.basis = 'requested';
      });
      expect(output).toContain('FAILED');
    });
  });
});
