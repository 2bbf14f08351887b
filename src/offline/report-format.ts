import { BASES, type BasisRisk } from '../core/risk.ts';
import { csvField } from './csv.ts';
import type { AgentSummary, EvaluationReport, RunReport, Spread } from './evaluation.ts';

/** Output formats of `evaluate` (and `-o`, as kubectl names it). */
export const FORMATS = ['table', 'markdown', 'csv', 'json'] as const;
export type Format = (typeof FORMATS)[number];

/** How the input was read: counted in every format. */
export interface InputStats {
  readonly files: number;
  readonly lines: number;
  readonly observations: number;
  readonly episodes: number;
  /** Lines of another kind read past (log lines that are not decisions, CSV headers). */
  readonly ignored: number;
  /** Lines skipped under --skip-bad-lines. */
  readonly badLines: number;
}

/** The marker of a ΦR at or above the line. */
export const HIGH_RISK = 'HIGH';

const RUN_COLUMNS = ['agent', 'run', 'basis', 'E', 'O', 'OR', 'AOC', 'AOC_norm', 'SR', 'ΦR', 'risk', 'fallback', 'unmeasured'];
const SUMMARY_COLUMNS = ['agent', 'basis', 'runs', 'E', 'OR', 'AOC', 'AOC_norm', 'SR', 'ΦR', 'high-risk runs'];

const ratio = (v: number) => v.toFixed(3);
const amount = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

function runRows(r: RunReport): string[][] {
  return BASES.map((basis) => {
    const b: BasisRisk = r.risk[basis];
    return [
      r.agent,
      r.run,
      basis,
      String(b.episodes),
      String(b.overuseEpisodes),
      ratio(b.overuseRate),
      amount(b.aoc),
      ratio(b.aocNorm),
      ratio(b.successRate),
      ratio(b.score),
      r.high[basis] ? HIGH_RISK : '',
      String(r.risk.fallbackEpisodes),
      String(r.risk.unmeasuredEpisodes),
    ];
  });
}

function summaryRows(s: AgentSummary, spread: (x: Spread, f: (v: number) => string) => string[]): string[][] {
  return BASES.map((basis) => {
    const m = s.bases[basis];
    return [
      s.agent,
      basis,
      String(s.runs),
      ...spread(m.episodes, amount),
      ...spread(m.overuseRate, ratio),
      ...spread(m.aoc, amount),
      ...spread(m.aocNorm, ratio),
      ...spread(m.successRate, ratio),
      ...spread(m.score, ratio),
      `${s.highRuns[basis]}/${s.runs}`,
    ];
  });
}

const plusMinus = (x: Spread, f: (v: number) => string) => [`${f(x.mean)} ± ${f(x.sd)}`];
const meanAndSd = (x: Spread, f: (v: number) => string) => [f(x.mean), f(x.sd)];

function aligned(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

function markdown(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ];
}

function inputLine(stats: InputStats): string {
  const skipped = stats.badLines > 0 ? `, ${stats.badLines} bad lines skipped` : '';
  const files = stats.files === 1 ? '1 file' : `${stats.files} files`;
  return `${stats.episodes} episodes from ${stats.observations} lines of ${files} (${stats.lines} lines read, ${stats.ignored} read past${skipped})`;
}

function optionsLine(report: EvaluationReport): string {
  const o = report.options;
  return `α ${o.alpha}, β ${o.beta}, tolerance ${o.tolerance}, high risk at ΦR ≥ ${o.line}`;
}

/** The report in one of the formats, as lines. */
export function formatReport(report: EvaluationReport, stats: InputStats, format: Format): string[] {
  const runs = report.runs.flatMap(runRows);
  switch (format) {
    case 'json':
      return [JSON.stringify({ options: report.options, input: stats, runs: report.runs.map(({ series: _s, ...r }) => r), summary: report.summary }, null, 2)];
    case 'csv':
      return [
        ['table', ...RUN_COLUMNS].map(csvField).join(','),
        ...runs.map((r) => ['run', ...r].map(csvField).join(',')),
        '',
        ['table', ...SUMMARY_COLUMNS.flatMap((c, i) => (i < 3 || c === 'high-risk runs' ? [c] : [`${c} mean`, `${c} sd`]))]
          .map(csvField)
          .join(','),
        ...report.summary.flatMap((s) => summaryRows(s, meanAndSd).map((r) => ['summary', ...r].map(csvField).join(','))),
      ];
    case 'markdown':
      return [
        '### Per agent and run',
        '',
        ...markdown(RUN_COLUMNS, runs.map((r) => r.map((c, i) => (i === 10 && c ? `**${c}**` : c)))),
        '',
        '### Across runs (mean ± sd)',
        '',
        ...markdown(SUMMARY_COLUMNS, report.summary.flatMap((s) => summaryRows(s, plusMinus))),
        '',
        `${optionsLine(report)}; ${inputLine(stats)}.`,
      ];
    case 'table':
      return [
        'PER AGENT AND RUN',
        ...aligned(RUN_COLUMNS, runs),
        '',
        'ACROSS RUNS (mean ± sd)',
        ...aligned(SUMMARY_COLUMNS, report.summary.flatMap((s) => summaryRows(s, plusMinus))),
        '',
        `${optionsLine(report)}; ${inputLine(stats)}.`,
      ];
  }
}
