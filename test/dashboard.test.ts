import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { systemClock } from '../src/clock.ts';
import { configSchema } from '../src/config.ts';
import { type AssembledGuard, assembleGuard } from '../src/guard.ts';
import { recordedSeries, riskRules, SHIPPED_WINDOW } from '../src/telemetry/risk-rules.ts';
import { policy } from './helpers/guard.ts';
import { capturingLogger } from './helpers/telemetry.ts';

const ROOT = join(import.meta.dirname, '..');
const DASHBOARD = join(ROOT, 'charts/replica-guard/dashboards/replica-guard.json');
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

/** The metrics every guard replica exports with the same cluster-wide value: aggregate with max. */
const SHARED_GAUGES = [
  'replica_guard_risk_overuse_rate',
  'replica_guard_risk_aoc',
  'replica_guard_risk_success_rate',
  'replica_guard_risk_aoc_norm',
  'replica_guard_risk_score',
  'replica_guard_family_instances',
  'replica_guard_family_need',
];

interface Target {
  readonly refId?: string;
  readonly expr?: string;
  readonly datasource?: unknown;
}
interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: unknown;
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
}
interface Variable {
  readonly name: string;
  readonly type: string;
  readonly query: unknown;
  readonly datasource?: unknown;
  readonly definition?: string;
  readonly multi?: boolean;
  readonly includeAll?: boolean;
}
interface Dashboard {
  readonly title: string;
  readonly uid: string;
  readonly schemaVersion: number;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan']);

/** The series a PromQL expression selects (not its functions, keywords or label names). */
function seriesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names: string[] = [];
  for (const m of stripped.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*/g)) {
    const rest = stripped.slice((m.index ?? 0) + m[0].length);
    if (/^\s*\(/.test(rest) || PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

/** The function or aggregation whose argument list holds position `at` of `expr` ('' at the top). */
function enclosingCall(expr: string, at: number): string {
  let depth = 0;
  for (let i = at - 1; i >= 0; i--) {
    const c = expr[i];
    if (c === ')') depth++;
    else if (c === '(') {
      if (depth === 0) {
        const before = expr.slice(0, i).replace(/\s*\b(?:by|without)\s*\([^)]*\)\s*$/, '');
        return /([a-z_]+)\s*$/.exec(before)?.[1] ?? '';
      }
      depth--;
    }
  }
  return '';
}

/** Metric names a scrape declares: every # HELP / # TYPE line (prom-client prints them with no samples) and every sample. */
function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][\w:]*)(?: (\S+))?/.exec(line);
    if (meta?.[2]) {
      names.add(meta[2]);
      if (meta[1] === 'TYPE' && meta[3] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(meta[2] + s);
      if (meta[1] === 'TYPE' && meta[3] === 'summary') for (const s of ['_sum', '_count']) names.add(meta[2] + s);
    } else if (line !== '' && !line.startsWith('#')) {
      const sample = /^([a-zA-Z_:][\w:]*)/.exec(line);
      if (sample?.[1]) names.add(sample[1]);
    }
  }
  return names;
}

const panelsOf = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const exprsOf = (d: Dashboard): { where: string; expr: string }[] =>
  panelsOf(d).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId ?? ''}`, expr: t.expr ?? '' })));

describe('seriesIn (the test’s own PromQL reader)', () => {
  it('finds the series and skips functions, keywords, labels, ranges and variables', () => {
    expect(
      seriesIn(
        'histogram_quantile(0.99, sum by (le, path) (rate(a_bucket{x="y{z}", agent=~"$agent"}[$__rate_interval]))) / on (le) group_left b:c:d ' +
          'or max by (agent) (e) > bool 1e3 offset 5m',
      ),
    ).toEqual(['a_bucket', 'b:c:d', 'e']);
  });

  it('names the aggregation around a selector', () => {
    const expr = 'x or max by (agent, basis) (rate(g[5m]))';
    expect(enclosingCall(expr, expr.indexOf('g['))).toBe('rate');
    expect(enclosingCall(expr, expr.indexOf('rate'))).toBe('max');
    expect(enclosingCall(expr, 0)).toBe('');
  });
});

describe('the Grafana dashboard', () => {
  let dashboard: Dashboard;
  let exported: Set<string>;
  let root: string;
  let guard: AssembledGuard | undefined;
  const recorded = new Set(recordedSeries(riskRules({ window: SHIPPED_WINDOW })));

  beforeAll(async () => {
    dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
    // A real scrape of the guard as main.ts wires it.
    root = await mkdtemp(join(tmpdir(), 'rg-dashboard-'));
    const policyDir = join(root, 'policies');
    await mkdir(policyDir);
    await writeFile(join(policyDir, 'p.yaml'), policy('cap', { mode: 'enforce', need: { onUnavailable: 'caps' }, limits: { perWorkload: 5 } }));
    const config = configSchema.parse({
      webhook: { port: 0 },
      ops: { port: 0 },
      tls: { dir: join(root, 'certs') },
      policies: { dir: policyDir, pollInterval: '1h' },
    });
    guard = await assembleGuard(config, { logger: capturingLogger('warn').logger, clock: systemClock });
    const res = await guard.app.ops.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    exported = exportedNames(res.body);
  });
  afterAll(async () => {
    await guard?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('is a Grafana dashboard of the expected schema', () => {
    expect(dashboard.uid).toBe('replica-guard');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = panelsOf(dashboard).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('takes the datasource and the agent as variables', () => {
    const [ds, agent] = dashboard.templating.list;
    expect(ds).toMatchObject({ name: 'datasource', type: 'datasource', query: 'prometheus' });
    expect(agent).toMatchObject({ name: 'agent', type: 'query', datasource: DATASOURCE, multi: true, includeAll: true });
    expect(agent?.definition).toBe('label_values(replica_guard_risk_score, agent)');
  });

  it('uses the datasource variable in every panel and every target', () => {
    for (const p of panelsOf(dashboard)) {
      if (p.type === 'row') {
        expect(p.targets ?? [], `row ${p.title}`).toEqual([]);
        continue;
      }
      expect(p.datasource, `panel ${p.id} "${p.title}"`).toEqual(DATASOURCE);
      expect(p.targets?.length, `panel ${p.id} "${p.title}" has no query`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.datasource, `panel ${p.id} target ${t.refId ?? ''}`).toEqual(DATASOURCE);
    }
  });

  it('names only series the guard exports or the rules record', () => {
    const unknown: string[] = [];
    // label_values(<series>, <label>) names a series too.
    const variables = dashboard.templating.list.flatMap((v) =>
      v.definition ? [{ where: `variable ${v.name}`, expr: v.definition.replace(/^label_values\((.*), *\w+\)$/, '$1') }] : [],
    );
    const queries = [...exprsOf(dashboard), ...variables];
    for (const { where, expr } of queries) {
      const names = seriesIn(expr);
      expect(names.length, `${where}: no series in ${expr}`).toBeGreaterThan(0);
      for (const name of names) if (!exported.has(name) && !recorded.has(name)) unknown.push(`${where}: ${name}`);
    }
    expect(unknown, 'names neither in a scrape of the guard (HELP lines included) nor recorded by the rules').toEqual([]);
  });

  it('shows every part the issue asks for', () => {
    const all = exprsOf(dashboard)
      .map((e) => e.expr)
      .join('\n');
    for (const name of [
      'agent_basis:replica_guard_risk_score:ratio_1h',
      'agent_basis:replica_guard_overuse_rate:ratio_1h',
      'agent_basis:replica_guard_aoc:sum_1h',
      'replica_guard_family_instances',
      'replica_guard_family_need',
      'replica_guard_admission_requests_total',
      'replica_guard_admission_duration_seconds_bucket',
      'replica_guard_load_source_errors_total',
      'replica_guard_ledger_conflicts_exhausted_total',
      'replica_guard_policy_reload_errors_total',
      'replica_guard_certificate_expiry_timestamp_seconds',
    ]) {
      expect(all, name).toContain(name);
    }
    expect(all).toContain('histogram_quantile(0.5,');
    expect(all).toContain('histogram_quantile(0.99,');
    expect(all).toMatch(/basis="requested"/);
    expect(all).toMatch(/basis="admitted"/);
  });

  it('aggregates the shared gauges with max, never sum', () => {
    for (const { where, expr } of exprsOf(dashboard)) {
      for (const gauge of SHARED_GAUGES) {
        for (const m of expr.matchAll(new RegExp(`(?<![\\w:])${gauge}(?![\\w:])`, 'g'))) {
          expect(enclosingCall(expr, m.index), `${where}: ${gauge}`).toBe('max');
        }
      }
    }
  });

  it('holds only PromQL that Prometheus parses (promtool check rules)', async () => {
    const exprs = exprsOf(dashboard).map((e) => e.expr.replaceAll('$__rate_interval', '5m').replaceAll('$agent', '.*'));
    const file = join(root, 'dashboard-queries.yaml');
    const rules = exprs.map((expr, i) => ({ record: `dashboard:query:${i}`, expr }));
    await writeFile(file, YAML.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const output = await new Promise<string>((resolve, reject) => {
      execFile('/usr/bin/promtool', ['check', 'rules', file], (err, stdout, stderr) =>
        err ? reject(new Error(`${stdout}${stderr}`)) : resolve(stdout),
      );
    });
    expect(output).toContain(`SUCCESS: ${exprs.length} rules found`);
  });
});
