import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatProblem, loadPolicyDirectory, loadPolicyPaths, parsePolicyText } from './policy-loader.ts';
import type { PolicyProblem } from './policy-loader.ts';

/** A valid policy document; `spec` lines are indented by two spaces under `spec:`. */
function policy(name: string, spec = 'mode: enforce\n  agents:\n    serviceAccounts: ["agents:*"]'): string {
  return `apiVersion: replica-guard.io/v1alpha1\nkind: ReplicaPolicy\nmetadata:\n  name: ${name}\nspec:\n  ${spec}\n`;
}

function warningsOf(text: string): PolicyProblem[] {
  const { policies, problems } = parsePolicyText(text, 'p.yaml');
  expect(policies).toHaveLength(1);
  expect(problems.filter((p) => p.severity === 'error')).toEqual([]);
  return problems;
}

describe('parsePolicyText', () => {
  it('maps a valid document to a Policy, defaults filled in and the source recorded', () => {
    const { policies, problems } = parsePolicyText(
      policy('support', 'mode: clamp\n  agents:\n    serviceAccounts: ["agents:*"]\n  limits:\n    perWorkload: 10\n    step: 3'),
      'policies/a.yaml',
    );
    expect(problems).toEqual([]);
    expect(policies).toEqual([
      {
        name: 'support',
        mode: 'clamp',
        agents: { serviceAccounts: ['agents:*'], users: [], groups: [] },
        namespaces: undefined,
        need: {
          static: undefined,
          min: undefined,
          max: undefined,
          onUnavailable: 'hold',
          prometheus: undefined,
          metricsApi: undefined,
          hpa: undefined,
        },
        limits: { perWorkload: 10, step: 3, rate: undefined },
        underPressure: undefined,
        clones: { allowed: false, ignoreImages: [] },
        podServiceAccounts: undefined,
        source: { file: 'policies/a.yaml', document: 1 },
      },
    ]);
  });

  it('reads load sources, rate, survival pressure and clones, durations in milliseconds', () => {
    const { policies, problems } = parsePolicyText(
      policy(
        'full',
        [
          'mode: enforce',
          '  agents:',
          '    serviceAccounts: ["agents:*"]',
          '  need:',
          '    prometheus:',
          '      query: sum(rate(http_requests_total{namespace="{{namespace}}"}[2m]))',
          '      targetPerInstance: 50',
          '  limits:',
          '    rate: { instances: 4, per: 5m }',
          '  underPressure:',
          '    limits: { step: 0, workloadsPerFamily: 1 }',
          '  clones:',
          '    ignoreImages: ["docker.io/library/*"]',
        ].join('\n'),
      ),
      'p.yaml',
    );
    expect(problems).toEqual([]);
    const p = policies[0];
    expect(p?.need.prometheus).toEqual({
      query: 'sum(rate(http_requests_total{namespace="{{namespace}}"}[2m]))',
      targetPerInstance: 50,
    });
    expect(p?.limits.rate).toEqual({ instances: 4, perMs: 300_000 });
    expect(p?.underPressure).toEqual({ windowMs: 600_000, limits: { step: 0, workloadsPerFamily: 1, rate: undefined } });
    expect(p?.clones).toEqual({ allowed: false, ignoreImages: ['docker.io/library/*'] });
  });

  it('refuses two load sources and a prometheus need without a target', () => {
    const two = parsePolicyText(
      policy('two', 'mode: enforce\n  agents:\n    users: [a]\n  need:\n    hpa: {}\n    metricsApi: { targetCpuUtilization: 80 }'),
      'p.yaml',
    );
    expect(two.problems.map((p) => p.message).join()).toMatch(/at most one load source/);
    const noTarget = parsePolicyText(
      policy('nt', 'mode: enforce\n  agents:\n    users: [a]\n  need:\n    prometheus: { query: "up" }'),
      'p.yaml',
    );
    expect(noTarget.problems.map((p) => p.message).join()).toMatch(/exactly one of targetPerInstance or latencyTarget/);
  });

  it('reads several documents per file, skipping empty ones but counting them as the user does', () => {
    const text = `${policy('first')}---\n# nothing here\n---\n${policy('second')}---\n`;
    const { policies, problems } = parsePolicyText(text, 'multi.yaml');
    expect(problems).toEqual([]);
    expect(policies.map((p) => [p.name, p.source.document])).toEqual([
      ['first', 1],
      ['second', 3],
    ]);
  });

  it('names file, document, field path and line of a bad value, with what was written', () => {
    const text = `${policy('ok')}---\n${policy('bad', 'mode: enforce\n  agents:\n    users: [bob]\n  limits:\n    perWorkload: -1')}`;
    const { policies, problems } = parsePolicyText(text, 'policies/x.yaml');
    expect(policies.map((p) => p.name)).toEqual(['ok']);
    expect(problems).toEqual([
      {
        severity: 'error',
        file: 'policies/x.yaml',
        document: 2,
        path: 'spec.limits.perWorkload',
        line: 19,
        message: 'perWorkload cannot be negative (got -1)',
      },
    ]);
    expect(formatProblem(problems[0] as PolicyProblem)).toBe(
      'policies/x.yaml: document 2 (line 19): spec.limits.perWorkload: perWorkload cannot be negative (got -1)',
    );
  });

  it('reports an enum mistake in plain words', () => {
    const { problems } = parsePolicyText(policy('a', 'mode: block\n  agents:\n    users: [bob]'), 'x.yaml');
    expect(problems.map(formatProblem)).toEqual([
      'x.yaml: document 1 (line 6): spec.mode: mode must be one of enforce, clamp, audit (got "block")',
    ]);
  });

  it('reports a typo as an unknown field, at the line of the misspelt key', () => {
    const { problems } = parsePolicyText(
      policy('a', 'mode: audit\n  agents:\n    users: [bob]\n  limits:\n    perWorkloads: 3'),
      'x.yaml',
    );
    expect(problems).toMatchObject([{ path: 'spec.limits', line: 10, message: 'unknown field "perWorkloads"' }]);
  });

  it('indexes list items in paths and says what type was expected', () => {
    const { problems } = parsePolicyText(policy('a', 'mode: audit\n  agents:\n    serviceAccounts:\n      - "agents:*"\n      - 7'), 'x.yaml');
    expect(problems).toMatchObject([{ path: 'spec.agents.serviceAccounts[1]', line: 10, message: 'must be text (got 7)' }]);
  });

  it('points a missing field at the mapping that lacks it', () => {
    const { problems } = parsePolicyText(policy('a', 'agents:\n    users: [bob]'), 'x.yaml');
    expect(problems).toMatchObject([{ path: 'spec.mode', line: 5, message: expect.stringContaining('the field is missing') }]);
  });

  it('reports cross-field rules on the field they concern', () => {
    const { problems } = parsePolicyText(
      policy('a', 'mode: audit\n  agents: {}\n  need:\n    min: 5\n    max: 2'),
      'x.yaml',
    );
    expect(problems).toMatchObject([
      { path: 'spec.agents', line: 7, message: 'agents must name at least one service account, user or group' },
      { path: 'spec.need.min', line: 9, message: 'need.min cannot be greater than need.max' },
    ]);
  });

  it('reports only apiVersion and kind for a document of another kind', () => {
    const { policies, problems } = parsePolicyText('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {}\n', 'x.yaml');
    expect(policies).toEqual([]);
    expect(problems.map(formatProblem)).toEqual([
      'x.yaml: document 1 (line 1): apiVersion: apiVersion must be replica-guard.io/v1alpha1 (got "v1")',
      'x.yaml: document 1 (line 2): kind: kind must be ReplicaPolicy (got "ConfigMap")',
    ]);
  });

  it('reports a missing apiVersion with what a policy needs', () => {
    const { problems } = parsePolicyText('kind: ReplicaPolicy\nmetadata: {name: x}\nspec: {mode: audit, agents: {users: [a]}}\n', 'x.yaml');
    expect(problems).toMatchObject([{ path: 'apiVersion', message: expect.stringContaining('apiVersion: replica-guard.io/v1alpha1') }]);
  });

  it('reports a YAML syntax error with line and column and keeps the other documents', () => {
    const text = `${policy('good')}---\nspec:\n  mode: [enforce\n`;
    const { policies, problems } = parsePolicyText(text, 'x.yaml');
    expect(policies.map((p) => p.name)).toEqual(['good']);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ severity: 'error', document: 2, line: expect.any(Number), column: expect.any(Number) });
    expect(formatProblem(problems[0] as PolicyProblem)).toMatch(/^x\.yaml: document 2 \(line \d+, column \d+\): YAML syntax error: /);
  });

  it('reports duplicate keys as YAML errors', () => {
    const { problems } = parsePolicyText(policy('a', 'mode: audit\n  mode: enforce\n  agents:\n    users: [bob]'), 'x.yaml');
    expect(problems).toMatchObject([{ severity: 'error', line: 7, message: expect.stringMatching(/unique/) }]);
  });

  it('rejects a document that is not a mapping', () => {
    const { problems } = parsePolicyText('- a\n- b\n', 'x.yaml');
    expect(problems).toMatchObject([{ document: 1, path: '', line: 1, message: 'a policy document must be a mapping (got a list)' }]);
  });

  it('warns about a file without any document', () => {
    expect(parsePolicyText('# only a comment\n', 'x.yaml').problems).toMatchObject([
      { severity: 'warning', document: null, message: 'the file holds no policy document' },
    ]);
  });

  it('reports two policies with the same name in one file', () => {
    const { problems } = parsePolicyText(`${policy('twin')}---\n${policy('twin')}`, 'x.yaml');
    expect(problems).toEqual([
      {
        severity: 'error',
        file: 'x.yaml',
        document: 2,
        path: 'metadata.name',
        line: 13,
        message: 'a policy named "twin" is already defined in x.yaml document 1 (line 4); policy names must be unique',
      },
    ]);
  });
});

describe('warnings for patterns that can match nothing', () => {
  const withAgents = (agents: string, extra = ''): string => policy('p', `mode: audit\n  agents:\n${agents}${extra}`);

  it('warns about a service account without namespace', () => {
    const [w] = warningsOf(withAgents('    serviceAccounts: ["agent-1"]'));
    expect(w).toMatchObject({ severity: 'warning', path: 'spec.agents.serviceAccounts[0]', line: 8 });
    expect(w?.message).toMatch(/no ":" and can never match.*namespace:name/);
  });

  it('warns about a wildcard without namespace, but not about a bare "*"', () => {
    expect(warningsOf(withAgents('    serviceAccounts: ["agent-*"]'))[0]?.message).toMatch(/matched against namespace:name as a whole/);
    expect(warningsOf(withAgents('    serviceAccounts: ["*", "*:*", "agents:*"]'))).toEqual([]);
  });

  it('warns about a service account with two colons', () => {
    expect(warningsOf(withAgents('    serviceAccounts: ["a:b:c"]'))[0]?.message).toMatch(/more than one ":"/);
  });

  it('warns when the namespace part is outside spec.namespaces', () => {
    const problems = warningsOf(withAgents('    serviceAccounts: ["other:bot", "agents:bot", "team-a:bot"]', '\n  namespaces: ["agents", "team-*"]'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ path: 'spec.agents.serviceAccounts[0]' });
    expect(problems[0]?.message).toMatch(/namespace "other" is outside spec.namespaces \(agents, team-\*\)/);
  });

  it('warns when a literal namespaces entry cannot match a namespace glob', () => {
    expect(warningsOf(withAgents('    serviceAccounts: ["team-*:bot"]', '\n  namespaces: ["agents"]'))).toHaveLength(1);
    expect(warningsOf(withAgents('    serviceAccounts: ["team-*:bot"]', '\n  namespaces: ["team-a"]'))).toEqual([]);
  });

  it('stays quiet when two globs might overlap', () => {
    expect(warningsOf(withAgents('    serviceAccounts: ["agent*:bot"]', '\n  namespaces: ["*-prod"]'))).toEqual([]);
  });

  it('warns when spec.namespaces is empty', () => {
    expect(warningsOf(withAgents('    serviceAccounts: ["agents:*"]', '\n  namespaces: []'))[0]?.message).toMatch(/spec.namespaces is empty/);
  });

  it('warns about kube-system service accounts, which are controllers', () => {
    expect(warningsOf(withAgents('    serviceAccounts: ["kube-system:*"]'))[0]?.message).toMatch(/kube-system.*never agents/);
    expect(warningsOf(withAgents('    serviceAccounts: ["kube-*:*"]'))).toEqual([]);
  });

  it('warns about users that only match controllers and nodes', () => {
    const problems = warningsOf(
      withAgents(
        '    users: ["system:kube-scheduler", "system:kube-*", "system:node:*", "system:serviceaccount:kube-system:*", "system:*", "alice"]',
      ),
    );
    expect(problems.map((p) => p.path)).toEqual([
      'spec.agents.users[0]',
      'spec.agents.users[1]',
      'spec.agents.users[2]',
      'spec.agents.users[3]',
    ]);
    for (const p of problems) expect(p.message).toMatch(/controllers and nodes, which are never agents/);
  });

  it('tells to write a service-account user under serviceAccounts', () => {
    const [w] = warningsOf(withAgents('    users: ["system:serviceaccount:agents:bot"]'));
    expect(w?.message).toMatch(/under spec.agents.serviceAccounts as namespace:name \("agents:bot"\)/);
  });

  it('warns when need.static is outside need.min..need.max', () => {
    const need = (n: string): string => withAgents('    users: [bob]', `\n  need:\n${n}`);
    expect(warningsOf(need('    min: 1\n    max: 10\n    static: 12'))).toMatchObject([
      { path: 'spec.need.static', line: 12, message: 'need.static (12) is above need.max (10), so it never applies as written' },
    ]);
    expect(warningsOf(need('    min: 2\n    static: 1'))[0]?.message).toMatch(/below need.min \(2\)/);
    expect(warningsOf(need('    min: 1\n    max: 10\n    static: 10'))).toEqual([]);
  });

  it('formats warnings so they are not mistaken for errors', () => {
    const [w] = warningsOf(withAgents('    serviceAccounts: ["agent-1"]'));
    expect(formatProblem(w as PolicyProblem)).toMatch(/^p\.yaml: document 1 \(line 8\): warning: spec\.agents\.serviceAccounts\[0\]: /);
  });
});

describe('loading files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-loader-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads *.yaml and *.yml sorted by name, skipping dot files and other extensions', async () => {
    await writeFile(join(dir, 'b.yml'), policy('bee'));
    await writeFile(join(dir, 'a.yaml'), policy('ay'));
    await writeFile(join(dir, '.hidden.yaml'), policy('hidden'));
    await writeFile(join(dir, 'notes.txt'), 'not yaml');
    await mkdir(join(dir, 'sub.yaml'));
    const load = await loadPolicyDirectory(dir);
    expect(load.problems).toEqual([]);
    expect(load.files).toEqual([join(dir, 'a.yaml'), join(dir, 'b.yml')]);
    expect(load.policies.map((p) => p.name)).toEqual(['ay', 'bee']);
    expect(load.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('follows the symlinks of a mounted ConfigMap', async () => {
    await mkdir(join(dir, '..2026_01_01_00_00_00.1'));
    await writeFile(join(dir, '..2026_01_01_00_00_00.1', 'p.yaml'), policy('mounted'));
    await symlink('..2026_01_01_00_00_00.1', join(dir, '..data'));
    await symlink('..data/p.yaml', join(dir, 'p.yaml'));
    const load = await loadPolicyDirectory(dir);
    expect(load.problems).toEqual([]);
    expect(load.files).toEqual([join(dir, 'p.yaml')]);
    expect(load.policies.map((p) => p.name)).toEqual(['mounted']);
  });

  it('digests names and contents: equal for equal files, different after an edit', async () => {
    await writeFile(join(dir, 'a.yaml'), policy('a'));
    const first = await loadPolicyDirectory(dir);
    expect((await loadPolicyDirectory(dir)).digest).toBe(first.digest);
    await writeFile(join(dir, 'a.yaml'), policy('b'));
    expect((await loadPolicyDirectory(dir)).digest).not.toBe(first.digest);
  });

  it('reports a missing directory as an error problem instead of throwing', async () => {
    const missing = join(dir, 'nope');
    const load = await loadPolicyDirectory(missing);
    expect(load.policies).toEqual([]);
    expect(load.files).toEqual([]);
    expect(load.problems).toEqual([
      { severity: 'error', file: missing, document: null, path: '', message: 'cannot read the policy directory: no such file or directory' },
    ]);
  });

  it('reports a file that cannot be read (a dangling symlink) as an error problem', async () => {
    await writeFile(join(dir, 'a.yaml'), policy('a'));
    await symlink('..data/gone.yaml', join(dir, 'gone.yaml'));
    const load = await loadPolicyDirectory(dir);
    expect(load.policies.map((p) => p.name)).toEqual(['a']);
    expect(load.problems).toMatchObject([{ severity: 'error', file: join(dir, 'gone.yaml'), message: 'cannot read: no such file or directory' }]);
  });

  it('reports duplicate names across files, naming both', async () => {
    await writeFile(join(dir, 'a.yaml'), policy('twin'));
    await writeFile(join(dir, 'b.yaml'), `${policy('other')}---\n${policy('twin')}`);
    const load = await loadPolicyDirectory(dir);
    expect(load.problems.map(formatProblem)).toEqual([
      `${join(dir, 'b.yaml')}: document 2 (line 13): metadata.name: a policy named "twin" is already defined in ${join(dir, 'a.yaml')} document 1 (line 4); policy names must be unique`,
    ]);
  });

  it('accepts files and directories, once each, and reports missing paths', async () => {
    await mkdir(join(dir, 'policies'));
    await writeFile(join(dir, 'policies', 'a.yaml'), policy('a'));
    await writeFile(join(dir, 'extra.txt'), policy('extra'));
    const load = await loadPolicyPaths([
      join(dir, 'policies'),
      join(dir, 'policies', 'a.yaml'),
      join(dir, 'extra.txt'),
      join(dir, 'missing.yaml'),
    ]);
    expect(load.files).toEqual([join(dir, 'policies', 'a.yaml'), join(dir, 'extra.txt')]);
    expect(load.policies.map((p) => p.name)).toEqual(['a', 'extra']);
    expect(load.problems).toMatchObject([{ severity: 'error', file: join(dir, 'missing.yaml'), message: 'cannot read: no such file or directory' }]);
  });
});

describe('formatProblem', () => {
  it('leaves out what is unknown', () => {
    expect(formatProblem({ severity: 'error', file: 'policies/', document: null, path: '', message: 'cannot read' })).toBe(
      'policies/: cannot read',
    );
    expect(formatProblem({ severity: 'error', file: 'a.yaml', document: 3, path: 'kind', message: 'm' })).toBe('a.yaml: document 3: kind: m');
  });
});
