import { Document } from 'yaml';
import { resolveRiskOptions, riskDefaults } from '../core/risk.ts';
import { webhookConfigurationAlerts } from './webhook-configuration-alerts.ts';

/**
 * The Prometheus rules file of the guard, generated from this one source so that the
 * window of the risk ratios is a parameter: `charts/replica-guard/prometheus-rules.yaml`
 * is the output for 1h, `test/rules/risk-rules-1m.yaml` the output for 1m (the promtool
 * unit tests run against both). `npm run rules` rewrites the two files.
 *
 * Recording rules add the per-process counters across replicas and restarts
 * (`sum by (agent, basis) (increase(...[window]))`) and compute, per agent and basis,
 * the cluster-wide E, O, OR, AOC, Σ need, AOC_norm, SR and ΦR of DESIGN.md ("Risk
 * metrics"); alerts cover a high ΦR, a sudden family growth and the guard's own health.
 */

/** A Prometheus duration: 90s, 5m, 1h, 1h30m, 7d. */
const DURATION = /^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$/;

export interface RiskRulesOptions {
  /** The window of every risk ratio, a Prometheus duration (the shipped file: 1h). */
  readonly window: string;
  /** Weight of OR in ΦR; α and β lie in [0, 1] and sum to at most 1, as the guard requires. */
  readonly alpha?: number;
  /** Weight of AOC_norm in ΦR. */
  readonly beta?: number;
  /** ΦR at or above this is high risk. */
  readonly highRiskLine?: number;
  /** How long ΦR stays at or above the line before the alert fires. */
  readonly highRiskFor?: string;
  /** The span over which a family's growth is measured. */
  readonly familyGrowthWindow?: string;
  /** A family growth alerts when it adds at least this many instances within the span... */
  readonly familyGrowthMinInstances?: number;
  /** ...and reaches at least this multiple of its smallest size in the span. */
  readonly familyGrowthFactor?: number;
  /** Share of reviews answered with an error (verdict=error) that alerts. */
  readonly admissionErrorRatio?: number;
  /** A cache of the cluster view older than this (seconds) is stale. */
  readonly staleViewSeconds?: number;
  /** The serving certificate alerts when it expires within this many days. */
  readonly certificateExpiryDays?: number;
}

/** The defaults; `window` has none (the shipped file uses 1h). α, β and the line are the guard's own (core/risk.ts). */
export const RISK_RULE_DEFAULTS = {
  alpha: riskDefaults.alpha,
  beta: riskDefaults.beta,
  highRiskLine: riskDefaults.highRiskLine,
  highRiskFor: '5m',
  familyGrowthWindow: '10m',
  familyGrowthMinInstances: 4,
  familyGrowthFactor: 2,
  admissionErrorRatio: 0.05,
  staleViewSeconds: 120,
  certificateExpiryDays: 14,
} as const;

/** The window of the shipped rules file. */
export const SHIPPED_WINDOW = '1h';

/** The names of the recorded series for one window (`level:metric:operations`). */
export interface RiskRecordNames {
  /** All episodes, by need (measured, fallback, unmeasured). */
  readonly episodesByNeed: string;
  /** E: measured episodes. */
  readonly episodes: string;
  /** O: measured episodes that asked for more than the need. */
  readonly overuseEpisodes: string;
  /** Measured episodes that added instances (SR's numerator). */
  readonly growthEpisodes: string;
  /** Σ max(0, count − need) over measured episodes, absent when the counter is. */
  readonly surplusInstances: string;
  /** Σ need over measured episodes (AOC_norm's denominator). */
  readonly needInstances: string;
  /** Instances denied or clamped away, per agent. */
  readonly preventedInstances: string;
  /** OR = O / E, 0 when E = 0. */
  readonly overuseRate: string;
  /** AOC = Σ surplus, 0 when there was none. */
  readonly aoc: string;
  /** AOC_norm = min(1, AOC / Σ need); 1 if AOC > 0 else 0 when Σ need = 0. */
  readonly aocNorm: string;
  /** SR = growth episodes / E, 0 when E = 0. */
  readonly successRate: string;
  /** ΦR = SR × (α·OR + β·AOC_norm). */
  readonly riskScore: string;
}

export function riskRecordNames(window: string): RiskRecordNames {
  checkDuration('window', window);
  const w = `_${window}`;
  return {
    episodesByNeed: `agent_basis_need:replica_guard_episodes:increase${w}`,
    episodes: `agent_basis:replica_guard_measured_episodes:increase${w}`,
    overuseEpisodes: `agent_basis:replica_guard_overuse_episodes:increase${w}`,
    growthEpisodes: `agent_basis:replica_guard_growth_episodes:increase${w}`,
    surplusInstances: `agent_basis:replica_guard_surplus_instances:increase${w}`,
    needInstances: `agent_basis:replica_guard_need_instances:increase${w}`,
    preventedInstances: `agent:replica_guard_prevented_instances:increase${w}`,
    overuseRate: `agent_basis:replica_guard_overuse_rate:ratio${w}`,
    aoc: `agent_basis:replica_guard_aoc:sum${w}`,
    aocNorm: `agent_basis:replica_guard_aoc_norm:ratio${w}`,
    successRate: `agent_basis:replica_guard_success_rate:ratio${w}`,
    riskScore: `agent_basis:replica_guard_risk_score:ratio${w}`,
  };
}

export interface RecordingRule {
  readonly record: string;
  readonly expr: string;
}

export interface AlertingRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly (RecordingRule | AlertingRule)[];
}

/** The content of a Prometheus rules file (`rule_files`, or a PrometheusRule's spec). */
export interface RuleFile {
  readonly groups: readonly RuleGroup[];
}

/** The rules for one window and set of parameters. Throws on an invalid option. */
export function riskRules(options: RiskRulesOptions): RuleFile {
  const d = RISK_RULE_DEFAULTS;
  const o = {
    window: options.window,
    alpha: options.alpha ?? d.alpha,
    beta: options.beta ?? d.beta,
    highRiskLine: options.highRiskLine ?? d.highRiskLine,
    highRiskFor: options.highRiskFor ?? d.highRiskFor,
    familyGrowthWindow: options.familyGrowthWindow ?? d.familyGrowthWindow,
    familyGrowthMinInstances: options.familyGrowthMinInstances ?? d.familyGrowthMinInstances,
    familyGrowthFactor: options.familyGrowthFactor ?? d.familyGrowthFactor,
    admissionErrorRatio: options.admissionErrorRatio ?? d.admissionErrorRatio,
    staleViewSeconds: options.staleViewSeconds ?? d.staleViewSeconds,
    certificateExpiryDays: options.certificateExpiryDays ?? d.certificateExpiryDays,
  };
  checkDuration('window', o.window);
  checkDuration('highRiskFor', o.highRiskFor);
  checkDuration('familyGrowthWindow', o.familyGrowthWindow);
  // The guard's own check: α and β in [0, 1], summing to at most 1 (ΦR stays in [0, 1]).
  resolveRiskOptions({ alpha: o.alpha, beta: o.beta });
  checkNumber('highRiskLine', o.highRiskLine, 0);
  checkNumber('familyGrowthMinInstances', o.familyGrowthMinInstances, 1);
  checkNumber('familyGrowthFactor', o.familyGrowthFactor, 1);
  checkNumber('admissionErrorRatio', o.admissionErrorRatio, 0);
  checkNumber('staleViewSeconds', o.staleViewSeconds, 1);
  checkNumber('certificateExpiryDays', o.certificateExpiryDays, 1);
  if (o.admissionErrorRatio >= 1) throw new Error(`admissionErrorRatio must be below 1, got ${o.admissionErrorRatio}`);

  const n = riskRecordNames(o.window);
  const w = o.window;
  const perAgent = (counter: string) => `sum by (agent, basis) (increase(${counter}[${w}]))`;
  /** `ratio` where E > 0, else 0; never above 1 (increase() extrapolates each series on its own). */
  const ofEpisodes = (numerator: string) => `clamp_max(${numerator} / (${n.episodes} > 0), 1)\nor\n0 * ${n.episodes}`;

  const recording: RecordingRule[] = [
    {
      record: n.episodesByNeed,
      expr: `sum by (agent, basis, need) (increase(replica_guard_episodes_total[${w}]))`,
    },
    {
      // E, present (as 0) for an agent whose episodes were all decided on a fallback or unmeasured need.
      record: n.episodes,
      expr: `sum by (agent, basis) (${n.episodesByNeed}{need="measured"})\nor\n0 * sum by (agent, basis) (${n.episodesByNeed})`,
    },
    { record: n.overuseEpisodes, expr: perAgent('replica_guard_overuse_episodes_total') },
    { record: n.growthEpisodes, expr: perAgent('replica_guard_growth_episodes_total') },
    { record: n.surplusInstances, expr: perAgent('replica_guard_surplus_instances_total') },
    { record: n.needInstances, expr: perAgent('replica_guard_need_instances_total') },
    {
      record: n.preventedInstances,
      expr: `sum by (agent) (increase(replica_guard_prevented_instances_total[${w}]))`,
    },
    { record: n.overuseRate, expr: ofEpisodes(n.overuseEpisodes) },
    { record: n.aoc, expr: `${n.surplusInstances}\nor\n0 * ${n.episodes}` },
    {
      // Σ need = 0 (or no need counted): 1 when there was any surplus, else 0.
      record: n.aocNorm,
      expr: `clamp_max(${n.aoc} / (${n.needInstances} > 0), 1)\nor\n(${n.aoc} > bool 0)`,
    },
    { record: n.successRate, expr: ofEpisodes(n.growthEpisodes) },
    {
      record: n.riskScore,
      expr: `${n.successRate}\n* (${num(o.alpha)} * ${n.overuseRate} + ${num(o.beta)} * ${n.aocNorm})`,
    },
  ];

  const family = 'max by (agent) (replica_guard_family_instances)';
  const smallest = `max by (agent) (min_over_time(replica_guard_family_instances[${o.familyGrowthWindow}]))`;
  const line = num(o.highRiskLine);
  const phi = '{{ printf "%.2f" $value }}';
  const riskAlerts: AlertingRule[] = [
    {
      alert: 'ReplicaGuardAgentRiskHigh',
      expr: `${n.riskScore}{basis="admitted"} >= ${line}`,
      for: o.highRiskFor,
      labels: { severity: 'critical' },
      annotations: {
        summary: 'Agent {{ $labels.agent }} replicates beyond its need past the guard.',
        description:
          `Over the last ${w}, the instances admitted for agent {{ $labels.agent }} give ΦR ${phi} ` +
          `(high-risk line ${line}): its growth got through the guard above the need.`,
        runbook:
          'Compare the requested and admitted panels of the replica-guard dashboard for this agent. ' +
          'If its policies are in audit mode or grant wide headroom or caps, tighten them (mode enforce or clamp, ' +
          'a lower headroom, perFamily or rate): the admitted basis then follows the need.',
      },
    },
    {
      alert: 'ReplicaGuardAgentReplicationIntentHigh',
      expr: `${n.riskScore}{basis="requested"} >= ${line}`,
      for: o.highRiskFor,
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Agent {{ $labels.agent }} keeps asking for more instances than it needs.',
        description:
          `Over the last ${w}, the counts agent {{ $labels.agent }} requested give ΦR ${phi} ` +
          `(high-risk line ${line}): it tries to replicate beyond its need.`,
        runbook:
          'Check the admitted ΦR of the same agent: low means the guard holds it. ' +
          "Read the agent's justification annotations in the audit log and find out why it asks for more.",
      },
    },
    {
      alert: 'ReplicaGuardFamilyGrowthSudden',
      // The gauge is the same on every replica: max, never sum. Value: instances gained.
      expr:
        `(\n  ${family}\n  - ${smallest}\n) >= ${num(o.familyGrowthMinInstances)}\n` +
        `and\n${family}\n  >= ${num(o.familyGrowthFactor)} * ${smallest}`,
      for: '1m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'The family of agent {{ $labels.agent }} grew fast.',
        description:
          `The family of agent {{ $labels.agent }} gained {{ $value }} instances within ${o.familyGrowthWindow} ` +
          `and is at least ${num(o.familyGrowthFactor)} times its smallest size in that span.`,
        runbook:
          'Compare family size with need on the dashboard. A rate limit (limits.rate) in the policy stops doubling, ' +
          'and a perFamily cap bounds the family whatever the need.',
      },
    },
  ];

  const opsAlerts: AlertingRule[] = [
    {
      alert: 'ReplicaGuardInternalErrors',
      expr: 'sum by (namespace, job) (increase(replica_guard_errors_total{code="RG_ERR_INTERNAL"}[5m])) > 0',
      for: '1m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'replica-guard answers reviews with internal errors.',
        description:
          '{{ printf "%.0f" $value }} reviews got RG_ERR_INTERNAL (HTTP 500) in the last 5m: ' +
          "the webhook's failurePolicy decided them, not a policy.",
        runbook: 'Search the guard logs for RG_ERR_INTERNAL; the error and its stack are logged with the review uid.',
      },
    },
    {
      alert: 'ReplicaGuardAdmissionErrorsHigh',
      expr:
        'sum by (namespace, job) (rate(replica_guard_admission_requests_total{verdict="error"}[5m]))\n' +
        '/\nsum by (namespace, job) (rate(replica_guard_admission_requests_total[5m]))\n' +
        `> ${num(o.admissionErrorRatio)}`,
      for: '10m',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'Many admission reviews end in an error.',
        description:
          '{{ $value | humanizePercentage }} of the reviews answered in the last 5m were errors ' +
          `(above ${num(o.admissionErrorRatio * 100)}%): agents are locked out or let through by the failurePolicy.`,
        runbook:
          'The errors panel of the dashboard shows the codes: RG_ERR_NOT_READY (no policy set or view), ' +
          'RG_ERR_BAD_* (a client sending malformed reviews), RG_ERR_INTERNAL (a bug: see the logs).',
      },
    },
    {
      alert: 'ReplicaGuardClusterViewStale',
      expr: `replica_guard_view_cache_age_seconds > ${num(o.staleViewSeconds)}`,
      for: '5m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'The cluster view of a guard replica is stale.',
        description:
          'The {{ $labels.resource }} cache of {{ $labels.instance }} last heard from the API {{ $value | humanizeDuration }} ago: ' +
          'its decisions use old family sizes.',
        runbook:
          "Check the replica's watch restarts (replica_guard_view_watch_restarts_total), its RBAC for list/watch and the API server's health; " +
          'restarting the replica rebuilds the view.',
      },
    },
    {
      alert: 'ReplicaGuardLedgerConflictsExhausted',
      expr: 'increase(replica_guard_ledger_conflicts_exhausted_total[10m]) > 0',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Ledger writes ran out of compare-and-swap retries.',
        description:
          '{{ printf "%.0f" $value }} ledger rounds on {{ $labels.instance }} gave up in the last 10m; ' +
          'their growth requests were denied with RG_ERR_LEDGER_CONFLICT.',
        runbook:
          'Many replicas writing the same agent ledger at once: check replica_guard_ledger_conflicts_total ' +
          'and the ledger write latency; a higher ledger.maxAttempts or fewer replicas help.',
      },
    },
    {
      alert: 'ReplicaGuardCertificateExpiringSoon',
      expr: `(replica_guard_certificate_expiry_timestamp_seconds > 0) - time() < ${num(o.certificateExpiryDays)} * 86400`,
      for: '15m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'The serving certificate of replica-guard expires soon.',
        description:
          'The certificate served by {{ $labels.instance }} expires in {{ $value | humanizeDuration }}; ' +
          'the API server cannot call an expired webhook, and the failurePolicy then decides every agent request.',
        runbook:
          'Renew the certificate (cert-manager, or replica-guard certs) and check that the replica reloaded it ' +
          'and that the webhook configurations carry the new CA bundle.',
      },
    },
    {
      alert: 'ReplicaGuardLoadSourceDown',
      expr: 'rate(replica_guard_load_source_errors_total{reason!="no_series"}[5m]) > 0',
      for: '5m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'A load source of replica-guard fails.',
        description:
          'Load lookups from {{ $labels.source }} fail on {{ $labels.instance }} ({{ $labels.reason }}): ' +
          "need falls back to each policy's onUnavailable, and those episodes are kept out of OR and AOC.",
        runbook: 'Check that the load source answers from the guard pods (address, credentials, query); the reason label tells which.',
      },
    },
    {
      alert: 'ReplicaGuardPolicyReloadFailed',
      expr: 'increase(replica_guard_policy_reload_errors_total[10m]) > 0',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'A policy change was rejected.',
        description: '{{ $labels.instance }} rejected a policy reload in the last 10m; the last good set keeps deciding.',
        runbook: 'Run replica-guard check on the policy files; the guard log names the file and the error.',
      },
    },
    {
      alert: 'ReplicaGuardAgentCanBypass',
      // Any replica's latest check; max so that two replicas reporting it alert once.
      expr: 'max by (agent, permission) (replica_guard_agent_bypass_permission) == 1',
      for: '1m',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'An agent holds a permission that gets around replica-guard.',
        description:
          '{{ $labels.agent }} holds {{ $labels.permission }}: RBAC alone protects the webhook configurations, ' +
          "the guard's namespace and kube-system, and this grant opens them.",
        runbook:
          'Run replica-guard doctor: it names each grant to remove (verb, resource, namespace); the guard log has the same line. ' +
          'Remove the binding that gives it, or the agent from the subjects.',
      },
    },
  ];

  return {
    groups: [
      // One group: its rules run in order at each evaluation, so the risk alerts see the
      // ratios recorded in the same round (separate groups run independently).
      { name: 'replica-guard-risk', rules: [...recording, ...riskAlerts] },
      { name: 'replica-guard-operations', rules: [...opsAlerts, ...webhookConfigurationAlerts()] },
    ],
  };
}

/** The names of all recording rules (what the dashboard may use besides the guard's own metrics). */
export function recordedSeries(file: RuleFile): string[] {
  return file.groups.flatMap((g) => g.rules.flatMap((r) => ('record' in r ? [r.record] : [])));
}

/** The rules file as YAML, with a header that says where it comes from. */
export function renderRiskRules(options: RiskRulesOptions): string {
  const doc = new Document(riskRules(options));
  doc.commentBefore =
    ` Generated by src/telemetry/risk-rules.ts (window ${options.window}): edit the generator and run \`npm run rules\`, never this file.\n` +
    ' Load it with rule_files, or as the spec of a PrometheusRule: see charts/replica-guard/README.md.';
  return doc.toString({ lineWidth: 0 });
}

/** The generated files in the repository, relative to its root. */
export const GENERATED_RULE_FILES: readonly { readonly path: string; readonly window: string }[] = [
  { path: 'charts/replica-guard/prometheus-rules.yaml', window: SHIPPED_WINDOW },
  { path: 'test/rules/risk-rules-1m.yaml', window: '1m' },
];

function num(value: number): string {
  return String(value);
}

function checkDuration(what: string, value: string): void {
  if (value === '' || !DURATION.test(value) || !/[1-9]/.test(value)) {
    throw new Error(`${what} must be a positive Prometheus duration such as 5m or 1h, got ${JSON.stringify(value)}`);
  }
}

function checkNumber(what: string, value: number, min: number): void {
  if (!Number.isFinite(value) || value < min) throw new Error(`${what} must be a number ≥ ${min}, got ${value}`);
}

if (import.meta.main) {
  // npm run rules: rewrite the generated files from the repository root.
  const { mkdir, writeFile } = await import('node:fs/promises');
  const { dirname } = await import('node:path');
  for (const f of GENERATED_RULE_FILES) {
    await mkdir(dirname(f.path), { recursive: true });
    await writeFile(f.path, renderRiskRules({ window: f.window }));
    process.stdout.write(`wrote ${f.path} (window ${f.window})\n`);
  }
}
