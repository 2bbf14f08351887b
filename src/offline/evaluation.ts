import {
  addEpisodeSums,
  BASES,
  type Basis,
  type BasisRisk,
  episodeSums,
  type EpisodeSums,
  NO_EPISODES,
  type RiskOptions,
  type RiskReport,
  riskOf,
} from '../core/risk.ts';
import type { Observation } from './observation.ts';

/** The totals of a run's workloads at one time: what a plot draws. */
export interface SeriesPoint {
  readonly time: number;
  readonly requested: number;
  readonly admitted: number;
  readonly need: number;
}

/** OR, AOC, SR, AOC_norm and ΦR of one agent's run, on both bases. */
export interface RunReport {
  readonly agent: string;
  readonly run: string;
  readonly risk: RiskReport;
  /** ΦR at or above the line, per basis. */
  readonly high: Readonly<Record<Basis, boolean>>;
  readonly series?: readonly SeriesPoint[] | undefined;
}

/** A mean and its sample standard deviation (0 for a single run). */
export interface Spread {
  readonly mean: number;
  readonly sd: number;
}

/** The metrics summarised across runs. */
export const SUMMARY_METRICS = ['episodes', 'overuseRate', 'aoc', 'aocNorm', 'successRate', 'score'] as const satisfies readonly (keyof BasisRisk)[];
export type SummaryMetric = (typeof SUMMARY_METRICS)[number];

/** One agent across its runs, per basis: the shape of the study's tables. */
export interface AgentSummary {
  readonly agent: string;
  readonly runs: number;
  readonly bases: Readonly<Record<Basis, Readonly<Record<SummaryMetric, Spread>>>>;
  /** Runs whose ΦR is at or above the line, per basis. */
  readonly highRuns: Readonly<Record<Basis, number>>;
}

/** What `evaluate` found. */
export interface EvaluationReport {
  readonly options: RiskOptions & { readonly line: number };
  readonly runs: readonly RunReport[];
  readonly summary: readonly AgentSummary[];
}

interface RunState {
  sums: EpisodeSums;
  series: SeriesPoint[] | undefined;
  workloads: Map<string, { requested: number; admitted: number; need: number }> | undefined;
  totals: { requested: number; admitted: number; need: number };
}

/**
 * Adds observations up per agent and run, in constant memory per run (the sums of
 * core/risk.ts), and computes the ratios with the same functions as the live metrics.
 * With `series`, each run also keeps the totals over time for a plot.
 */
export class Evaluation {
  readonly #options: RiskOptions & { readonly line: number };
  readonly #series: boolean;
  readonly #runs = new Map<string, Map<string, RunState>>();

  constructor(options: RiskOptions & { readonly line: number }, series = false) {
    this.#options = options;
    this.#series = series;
  }

  add(o: Observation): void {
    let byRun = this.#runs.get(o.agent);
    if (!byRun) this.#runs.set(o.agent, (byRun = new Map()));
    let run = byRun.get(o.run);
    if (!run) {
      run = {
        sums: NO_EPISODES,
        series: this.#series ? [] : undefined,
        workloads: this.#series ? new Map() : undefined,
        totals: { requested: 0, admitted: 0, need: 0 },
      };
      byRun.set(o.run, run);
    }
    if (o.episode) run.sums = addEpisodeSums(run.sums, episodeSums(o.episode, this.#options));
    if (run.workloads && run.series) track(run, o);
  }

  report(): EvaluationReport {
    const runs: RunReport[] = [];
    const summary: AgentSummary[] = [];
    for (const agent of [...this.#runs.keys()].sort()) {
      const byRun = this.#runs.get(agent) ?? new Map<string, RunState>();
      const reports = [...byRun.keys()].sort().map((run): RunReport => {
        const state = byRun.get(run);
        const risk = riskOf(state?.sums ?? NO_EPISODES, this.#options);
        return {
          agent,
          run,
          risk,
          high: { requested: risk.requested.score >= this.#options.line, admitted: risk.admitted.score >= this.#options.line },
          series: state?.series,
        };
      });
      runs.push(...reports);
      summary.push(summarise(agent, reports));
    }
    return { options: this.#options, runs, summary };
  }
}

function track(run: RunState, o: Observation): void {
  const workloads = run.workloads;
  if (!workloads || !run.series) return;
  const before = workloads.get(o.workload) ?? { requested: 0, admitted: 0, need: 0 };
  const need = o.need ?? before.need;
  workloads.set(o.workload, { requested: o.requested, admitted: o.admitted, need });
  const t = run.totals;
  t.requested += o.requested - before.requested;
  t.admitted += o.admitted - before.admitted;
  t.need += need - before.need;
  run.series.push({ time: o.time, requested: t.requested, admitted: t.admitted, need: t.need });
}

/** The mean and sample standard deviation of some values. */
export function spreadOf(values: readonly number[]): Spread {
  const n = values.length;
  if (n === 0) return { mean: 0, sd: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, sd: 0 };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return { mean, sd: Math.sqrt(variance) };
}

function summarise(agent: string, reports: readonly RunReport[]): AgentSummary {
  const basis = (b: Basis) =>
    Object.fromEntries(SUMMARY_METRICS.map((m) => [m, spreadOf(reports.map((r) => r.risk[b][m]))])) as Record<
      SummaryMetric,
      Spread
    >;
  return {
    agent,
    runs: reports.length,
    bases: { requested: basis('requested'), admitted: basis('admitted') },
    highRuns: Object.fromEntries(BASES.map((b) => [b, reports.filter((r) => r.high[b]).length])) as Record<Basis, number>,
  };
}
