import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import type { Ledger } from '../cluster/ledger.ts';
import { type AgentLedgerState, episodeSumsWithin, familyWithin } from '../core/ledger-state.ts';
import {
  addEpisodeSums,
  BASES,
  type Basis,
  type EpisodeSums,
  type NeedClass,
  type RiskReport,
  type RiskSettings,
  riskOf,
} from '../core/risk.ts';

/** The label value every agent past the series cap is folded into. */
export const OTHER_AGENTS = 'other';

/** Defaults of the options below; the configuration (`metrics.*`) takes its defaults from here. */
export const riskMetricsDefaults = Object.freeze({
  maxAgents: 100,
  cacheTtlMs: 5_000,
  readConcurrency: 8,
});

export interface RiskMetricsOptions {
  /** Where the gauges read the agents' shared state at scrape time (read-only transactions). */
  readonly ledger: Pick<Ledger, 'transact'>;
  readonly clock: Clock;
  /** Window, weights, tolerance and normalisation (core/risk.ts). */
  readonly settings: RiskSettings;
  /** Agents with a label of their own; the rest are folded into `other` (default 100). */
  readonly maxAgents?: number | undefined;
  /** How long one read of the agents' states serves scrapes (default 5 s). */
  readonly cacheTtlMs?: number | undefined;
  /** Agent states read at once during a refresh (default 8). */
  readonly readConcurrency?: number | undefined;
}

/**
 * The risk metrics of one guard process: counters moved once per new episode, and
 * windowed gauges read from the shared ledger at scrape time.
 */
export interface RiskMetrics {
  readonly settings: RiskSettings;
  /**
   * Notes an agent a decision was made for (dry-run excluded). The first `maxAgents`
   * noted keep their own label for the life of the process; the gauges cover the agents
   * noted within the window.
   */
  seen(agent: string): void;
  /** The label value of an agent: its identity, or `other` past the cap. */
  agentLabel(agent: string): string;
  /**
   * Counts one NEW episode (its key recorded for the first time; never a duplicate, never
   * a dry run). `sums` are the episode's own (core/risk.ts `episodeSums`): the same that
   * went into the ledger's bucket. `prevented`: requested − admitted.
   */
  countEpisode(agent: string, sums: EpisodeSums, prevented: number): void;
}

/** Keeps which agents have a label of their own and which were seen recently. Bounded. */
class AgentSeries {
  readonly #max: number;
  /** Agents with their own label → when last seen (epoch ms). At most `max`, kept for the process's life. */
  readonly #labelled = new Map<string, number>();
  /** Folded agents → when last seen, least recently seen first. At most `max`: the gauge of `other` covers these. */
  readonly #folded = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
  }

  label(agent: string): string {
    if (this.#labelled.has(agent)) return agent;
    if (this.#labelled.size < this.#max) {
      this.#labelled.set(agent, Number.NEGATIVE_INFINITY);
      return agent;
    }
    return OTHER_AGENTS;
  }

  seen(agent: string, at: number): void {
    if (this.label(agent) !== OTHER_AGENTS) {
      this.#labelled.set(agent, at);
      return;
    }
    this.#folded.delete(agent);
    this.#folded.set(agent, at);
    if (this.#folded.size > Math.max(1, this.#max)) {
      const oldest = this.#folded.keys().next();
      if (!oldest.done) this.#folded.delete(oldest.value);
    }
  }

  /** Agents seen at or after `since`, with their label. */
  recent(since: number): { readonly agent: string; readonly label: string }[] {
    const out: { agent: string; label: string }[] = [];
    for (const [agent, at] of this.#labelled) if (at >= since) out.push({ agent, label: agent });
    for (const [agent, at] of this.#folded) if (at >= since) out.push({ agent, label: OTHER_AGENTS });
    return out;
  }
}

/** What one label shows: the summed episode statistics and the family, if any was seen. */
interface Row {
  readonly sums: EpisodeSums;
  readonly family: { readonly instances: number; readonly need: number } | undefined;
}

/** The states read at one refresh, aggregated by label. */
interface Snapshot {
  readonly readAt: number;
  readonly rows: ReadonlyMap<string, { readonly row: Row; readonly risk: RiskReport }>;
}

const readOnly = (state: AgentLedgerState) => ({ result: state, next: undefined });

/**
 * Creates the risk counters and gauges on the given registry (never prom-client's global
 * one).
 *
 * Counters (per process, summable across replicas and restarts: the source of truth for
 * the recording rules) move once per new episode in the validating call's transaction.
 *
 * Gauges are computed at scrape time from the SHARED ledger (one read-only transaction
 * per agent: with the Kubernetes ledger one GET of its ConfigMap), over the agents this
 * process noted within the window, at most `maxAgents` labelled ones plus `maxAgents`
 * folded ones. A read serves scrapes for `cacheTtlMs`. Every replica reads the same
 * state, so every replica that saw an agent exports the same value: dashboards aggregate
 * the gauges with `max`, never `sum`.
 */
export function createRiskMetrics(registry: Registry, options: RiskMetricsOptions): RiskMetrics {
  const registers = [registry];
  const { clock, settings, ledger } = options;
  const series = new AgentSeries(Math.max(0, options.maxAgents ?? riskMetricsDefaults.maxAgents));
  const cacheTtlMs = options.cacheTtlMs ?? riskMetricsDefaults.cacheTtlMs;
  const concurrency = Math.max(1, options.readConcurrency ?? riskMetricsDefaults.readConcurrency);

  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers });
  const episodes = counter(
    'replica_guard_episodes_total',
    'Episodes (growth requests counted once per episode key) by agent, basis and need: measured, fallback (a stand-in need: kept out of OR and AOC) or unmeasured (no need at all).',
    ['agent', 'basis', 'need'],
  );
  const overuse = counter(
    'replica_guard_overuse_episodes_total',
    'Measured episodes whose count (requested or admitted, by basis) exceeded need plus the tolerance: OR numerator.',
    ['agent', 'basis'],
  );
  const growth = counter(
    'replica_guard_growth_episodes_total',
    'Measured episodes that added instances (requested basis: every episode; admitted: admitted above the count before): SR numerator.',
    ['agent', 'basis'],
  );
  const surplus = counter(
    'replica_guard_surplus_instances_total',
    'Instances above need plus the tolerance, summed over measured episodes, by basis: AOC.',
    ['agent', 'basis'],
  );
  const need = counter(
    'replica_guard_need_instances_total',
    'Need summed over measured episodes (the same on both bases): the denominator of AOC_norm.',
    ['agent', 'basis'],
  );
  const prevented = counter(
    'replica_guard_prevented_instances_total',
    'Instances the guard kept from running: requested minus admitted, over denied and clamped episodes.',
    ['agent'],
  );
  const readErrors = counter(
    'replica_guard_ledger_risk_read_errors_total',
    'Ledger reads for the risk gauges that failed; that agent is left out of the gauges until a read succeeds.',
    [],
  );

  let cached: Snapshot | undefined;
  let inFlight: Promise<Snapshot> | undefined;

  async function read(): Promise<Snapshot> {
    const now = clock.now();
    const agents = series.recent(now.getTime() - settings.windowMs);
    const states = new Array<AgentLedgerState | undefined>(agents.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < agents.length; i = next++) {
        const entry = agents[i];
        if (!entry) continue;
        try {
          states[i] = await ledger.transact(entry.agent, readOnly);
        } catch {
          readErrors.inc();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, agents.length) }, worker));

    const rows = new Map<string, Row>();
    agents.forEach((entry, i) => {
      const state = states[i];
      if (!state) return;
      const sums = episodeSumsWithin(state, settings.windowMs, now);
      const family = familyWithin(state, settings.windowMs, now);
      const prev = rows.get(entry.label);
      // `other` adds the folded agents' statistics: its ratios are those of their episodes together.
      rows.set(entry.label, {
        sums: prev ? addEpisodeSums(prev.sums, sums) : sums,
        family:
          prev?.family && family
            ? { instances: prev.family.instances + family.instances, need: prev.family.need + family.need }
            : (family ?? prev?.family),
      });
    });
    const out = new Map<string, { row: Row; risk: RiskReport }>();
    for (const [label, row] of rows) out.set(label, { row, risk: riskOf(row.sums, settings) });
    return { readAt: clock.monotonicMs(), rows: out };
  }

  /** The snapshot for this scrape: cached for `cacheTtlMs`, one read shared by every gauge of a scrape. */
  function snapshot(): Promise<Snapshot> {
    if (cached && clock.monotonicMs() - cached.readAt < cacheTtlMs) return Promise.resolve(cached);
    if (!inFlight) {
      inFlight = read().then(
        (s) => {
          cached = s;
          inFlight = undefined;
          return s;
        },
        (err: unknown) => {
          inFlight = undefined;
          throw err;
        },
      );
    }
    return inFlight;
  }

  const basisGauge = (name: string, help: string, value: (risk: RiskReport, basis: Basis) => number) => {
    const gauge: Gauge<'agent' | 'basis'> = new Gauge({
      name,
      help: `${help} Over the last ${windowText(settings.windowMs)}, from the shared ledger: the same on every replica (aggregate with max, never sum).`,
      labelNames: ['agent', 'basis'],
      registers,
      collect: async () => {
        const s = await snapshot();
        gauge.reset();
        for (const [agent, { risk }] of s.rows) for (const basis of BASES) gauge.set({ agent, basis }, value(risk, basis));
      },
    });
    return gauge;
  };
  basisGauge('replica_guard_risk_overuse_rate', 'Overuse rate OR = overuse episodes / measured episodes (0 without episodes).', (r, b) => r[b].overuseRate);
  basisGauge('replica_guard_risk_aoc', 'Aggregate overuse count AOC = instances above need plus the tolerance, summed over measured episodes.', (r, b) => r[b].aoc);
  basisGauge('replica_guard_risk_success_rate', 'Success rate SR = episodes that added instances / measured episodes.', (r, b) => r[b].successRate);
  basisGauge(
    'replica_guard_risk_aoc_norm',
    'AOC_norm = min(1, AOC / sum of need); with no need at all, 1 if AOC > 0 else 0.',
    (r, b) => r[b].aocNorm,
  );
  basisGauge(
    'replica_guard_risk_score',
    // HELP text stays ASCII: not every tool in a scrape pipeline reads UTF-8 there.
    `Risk score PhiR = SR * (${settings.alpha} * OR + ${settings.beta} * AOC_norm); high risk at ${settings.highRiskLine} or more.`,
    (r, b) => r[b].score,
  );

  const familyGauge = (name: string, help: string, value: (family: { instances: number; need: number }) => number) => {
    const gauge: Gauge<'agent'> = new Gauge({
      name,
      help: `${help} Within the last ${windowText(settings.windowMs)}, from the shared ledger (aggregate with max, never sum).`,
      labelNames: ['agent'],
      registers,
      collect: async () => {
        const s = await snapshot();
        gauge.reset();
        for (const [agent, { row }] of s.rows) if (row.family) gauge.set({ agent }, value(row.family));
      },
    });
    return gauge;
  };
  familyGauge(
    'replica_guard_family_instances',
    "Potential instances of the agent's family, as the decision that recorded its latest episode saw them.",
    (f) => f.instances,
  );
  familyGauge(
    'replica_guard_family_need',
    "Need of the agent's family: the sum of the latest measured need of each workload its episodes judged.",
    (f) => f.need,
  );

  const classOf = (sums: EpisodeSums): NeedClass => (sums.measured > 0 ? 'measured' : sums.fallback > 0 ? 'fallback' : 'unmeasured');

  return {
    settings,
    seen(agent) {
      series.seen(agent, clock.now().getTime());
    },
    agentLabel(agent) {
      return series.label(agent);
    },
    countEpisode(agent, sums, instancesPrevented) {
      const label = series.label(agent);
      const cls = classOf(sums);
      for (const basis of BASES) {
        episodes.inc({ agent: label, basis, need: cls });
        if (cls !== 'measured') continue;
        // Incremented by 0 too, so that every series starts at 0 with the agent's first
        // measured episode and rate() sees its first increase.
        overuse.inc({ agent: label, basis }, sums[basis].overuse);
        growth.inc({ agent: label, basis }, sums[basis].growth);
        surplus.inc({ agent: label, basis }, sums[basis].surplus);
        need.inc({ agent: label, basis }, sums.needSum);
      }
      prevented.inc({ agent: label }, Math.max(0, instancesPrevented));
    },
  };
}

function windowText(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
