import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import YAML from 'yaml';
import { createReconcilerMetrics } from '../cluster/webhook-reconciler.ts';
import { riskDefaults } from '../core/risk.ts';
import {
  type AlertingRule,
  RISK_RULE_DEFAULTS,
  type RecordingRule,
  recordedSeries,
  renderRiskRules,
  riskRecordNames,
  riskRules,
  type RuleFile,
  SHIPPED_WINDOW,
} from './risk-rules.ts';

const rulesOf = (file: RuleFile) => file.groups.flatMap((g) => g.rules);
const recordingOf = (file: RuleFile) => rulesOf(file).filter((r): r is RecordingRule => 'record' in r);
const alertsOf = (file: RuleFile) => rulesOf(file).filter((r): r is AlertingRule => 'alert' in r);
const alert = (file: RuleFile, name: string) => {
  const found = alertsOf(file).find((a) => a.alert === name);
  if (!found) throw new Error(`no alert ${name}`);
  return found;
};
const record = (file: RuleFile, name: string) => {
  const found = recordingOf(file).find((r) => r.record === name);
  if (!found) throw new Error(`no recording rule ${name}`);
  return found;
};

/** What the guard exports (the names are fixed with the metrics work). */
const EXPORTED = new Set([
  'replica_guard_episodes_total',
  'replica_guard_overuse_episodes_total',
  'replica_guard_growth_episodes_total',
  'replica_guard_surplus_instances_total',
  'replica_guard_need_instances_total',
  'replica_guard_prevented_instances_total',
  'replica_guard_family_instances',
  'replica_guard_admission_requests_total',
  'replica_guard_errors_total',
  'replica_guard_certificate_expiry_timestamp_seconds',
  'replica_guard_load_source_errors_total',
  'replica_guard_view_cache_age_seconds',
  'replica_guard_ledger_conflicts_exhausted_total',
  'replica_guard_policy_reload_errors_total',
  // The webhook configuration reconciler's, as it registers them.
  ...(() => {
    const registry = new Registry();
    createReconcilerMetrics(registry);
    return registry.getMetricsAsArray().map((m) => m.name);
  })(),
  'replica_guard_agent_bypass_permission',
]);

describe('riskRules', () => {
  const shipped = riskRules({ window: '1h' });

  it('records every ratio of DESIGN.md per agent and basis, named level:metric:operations with the window', () => {
    const names = recordedSeries(shipped);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^agent(_basis(_need)?)?:replica_guard_[a-z_]+:[a-z]+_1h$/);
    expect(names).toEqual(expect.arrayContaining(Object.values(riskRecordNames('1h'))));
    expect(names).toContain('agent_basis:replica_guard_overuse_rate:ratio_1h');
    expect(names).toContain('agent_basis:replica_guard_risk_score:ratio_1h');
  });

  it('sums the per-process counters by agent and basis over the window, never by replica', () => {
    for (const r of recordingOf(shipped)) {
      for (const m of r.expr.matchAll(/increase\(([a-z_]+)\[([^\]]+)\]\)/g)) {
        expect(m[2], r.record).toBe('1h');
        expect(m[1], r.record).toMatch(/_total$/);
      }
      for (const by of r.expr.matchAll(/sum by \(([^)]*)\)/g)) expect(by[1]).not.toMatch(/instance|pod/);
    }
    expect(record(shipped, 'agent_basis:replica_guard_overuse_episodes:increase_1h').expr).toBe(
      'sum by (agent, basis) (increase(replica_guard_overuse_episodes_total[1h]))',
    );
  });

  it('counts only measured episodes in E', () => {
    expect(record(shipped, 'agent_basis:replica_guard_measured_episodes:increase_1h').expr).toContain('{need="measured"}');
  });

  it('uses a recorded series only after the rule that records it, in the same group', () => {
    for (const group of shipped.groups) {
      const seen = new Set<string>();
      for (const r of group.rules) {
        for (const used of r.expr.match(/\b[a-z_]+:[a-z_]+:[a-z0-9_]+\b/g) ?? []) {
          expect(seen.has(used), `${'record' in r ? r.record : r.alert} uses ${used} before it is recorded`).toBe(true);
        }
        if ('record' in r) seen.add(r.record);
      }
    }
  });

  it('reads only metrics the guard exports', () => {
    const used = new Set(rulesOf(shipped).flatMap((r) => r.expr.match(/(?<![\w:])replica_guard_[a-z_]+/g) ?? []));
    expect([...used].filter((m) => !EXPORTED.has(m))).toEqual([]);
  });

  it('aggregates the shared gauges with max, never sum', () => {
    for (const r of rulesOf(shipped)) {
      expect(r.expr).not.toMatch(/sum[^(]*\((?:\s*\w+\()?\s*replica_guard_(family|risk)_/);
    }
    expect(alert(shipped, 'ReplicaGuardFamilyGrowthSudden').expr).toContain('max by (agent) (replica_guard_family_instances)');
  });

  it('weights ΦR with α and β, and alerts at the line, with the defaults of DESIGN.md', () => {
    expect(RISK_RULE_DEFAULTS).toMatchObject({ alpha: 0.5, beta: 0.5, highRiskLine: 0.5 });
    expect(RISK_RULE_DEFAULTS).toMatchObject({ alpha: riskDefaults.alpha, beta: riskDefaults.beta, highRiskLine: riskDefaults.highRiskLine });
    // The shipped rules and the guard's gauges look at the same window.
    expect(SHIPPED_WINDOW).toBe('1h');
    expect(riskDefaults.windowMs).toBe(60 * 60 * 1000);
    expect(record(shipped, 'agent_basis:replica_guard_risk_score:ratio_1h').expr).toBe(
      'agent_basis:replica_guard_success_rate:ratio_1h\n' +
        '* (0.5 * agent_basis:replica_guard_overuse_rate:ratio_1h + 0.5 * agent_basis:replica_guard_aoc_norm:ratio_1h)',
    );
    const custom = riskRules({ window: '30m', alpha: 0.7, beta: 0.3, highRiskLine: 0.4, highRiskFor: '2m' });
    expect(record(custom, 'agent_basis:replica_guard_risk_score:ratio_30m').expr).toContain('0.7 * agent_basis:replica_guard_overuse_rate:ratio_30m');
    expect(record(custom, 'agent_basis:replica_guard_risk_score:ratio_30m').expr).toContain('0.3 * agent_basis:replica_guard_aoc_norm:ratio_30m');
    expect(alert(custom, 'ReplicaGuardAgentRiskHigh')).toMatchObject({
      expr: 'agent_basis:replica_guard_risk_score:ratio_30m{basis="admitted"} >= 0.4',
      for: '2m',
    });
  });

  it('writes the Σ need = 0 rule of AOC_norm and the E = 0 rule of OR in PromQL', () => {
    expect(record(shipped, 'agent_basis:replica_guard_aoc_norm:ratio_1h').expr).toBe(
      'clamp_max(agent_basis:replica_guard_aoc:sum_1h / (agent_basis:replica_guard_need_instances:increase_1h > 0), 1)\n' +
        'or\n(agent_basis:replica_guard_aoc:sum_1h > bool 0)',
    );
    expect(record(shipped, 'agent_basis:replica_guard_overuse_rate:ratio_1h').expr).toContain(
      '/ (agent_basis:replica_guard_measured_episodes:increase_1h > 0)',
    );
  });

  it('alerts for the risk line, growth, errors, a stale view, the ledger, the certificate, the load sources and agents that can get around the guard', () => {
    expect(alertsOf(shipped).map((a) => a.alert)).toEqual([
      'ReplicaGuardAgentRiskHigh',
      'ReplicaGuardAgentReplicationIntentHigh',
      'ReplicaGuardFamilyGrowthSudden',
      'ReplicaGuardInternalErrors',
      'ReplicaGuardAdmissionErrorsHigh',
      'ReplicaGuardClusterViewStale',
      'ReplicaGuardLedgerConflictsExhausted',
      'ReplicaGuardCertificateExpiringSoon',
      'ReplicaGuardLoadSourceDown',
      'ReplicaGuardPolicyReloadFailed',
      'ReplicaGuardAgentCanBypass',
      'ReplicaGuardWebhookConfigurationUnmanaged',
      'ReplicaGuardWebhookConfigurationRestored',
      'ReplicaGuardWebhookConfigurationOutOfSync',
    ]);
    for (const a of alertsOf(shipped)) {
      expect(['warning', 'critical']).toContain(a.labels.severity);
      expect(Object.keys(a.annotations).sort()).toEqual(['description', 'runbook', 'summary']);
    }
    for (const name of ['ReplicaGuardAgentRiskHigh', 'ReplicaGuardAgentReplicationIntentHigh', 'ReplicaGuardFamilyGrowthSudden']) {
      expect(alert(shipped, name).annotations.summary).toContain('{{ $labels.agent }}');
    }
    expect(alert(shipped, 'ReplicaGuardClusterViewStale')).toMatchObject({ expr: 'replica_guard_view_cache_age_seconds > 120', for: '5m' });
    expect(alert(shipped, 'ReplicaGuardLedgerConflictsExhausted').expr).toBe('increase(replica_guard_ledger_conflicts_exhausted_total[10m]) > 0');
    expect(alert(shipped, 'ReplicaGuardCertificateExpiringSoon').expr).toContain('- time() < 14 * 86400');
    expect(alert(shipped, 'ReplicaGuardLoadSourceDown')).toMatchObject({
      expr: 'rate(replica_guard_load_source_errors_total{reason!="no_series"}[5m]) > 0',
      for: '5m',
    });
    expect(alert(shipped, 'ReplicaGuardInternalErrors').expr).toContain('code="RG_ERR_INTERNAL"');
    expect(alert(shipped, 'ReplicaGuardAdmissionErrorsHigh').expr).toContain('verdict="error"');
  });

  it('refuses options Prometheus could not load or that make no sense', () => {
    for (const window of ['', '1x', '0m', '1 h', '-5m', 'h']) expect(() => riskRules({ window }), window).toThrow(/window/);
    expect(() => riskRules({ window: '1h', alpha: -0.1 })).toThrow(/alpha/);
    expect(() => riskRules({ window: '1h', beta: Number.NaN })).toThrow(/beta/);
    expect(() => riskRules({ window: '1h', alpha: 0.7, beta: 0.7 })).toThrow(/sum to at most 1/);
    expect(() => riskRules({ window: '1h', highRiskFor: 'soon' })).toThrow(/highRiskFor/);
    expect(() => riskRules({ window: '1h', admissionErrorRatio: 1 })).toThrow(/admissionErrorRatio/);
    expect(() => riskRules({ window: '1h', familyGrowthFactor: 0.5 })).toThrow(/familyGrowthFactor/);
    expect(() => riskRules({ window: '1h30m' })).not.toThrow();
  });

  it('renders YAML that reads back as the same rules, under a header naming the generator', () => {
    const text = renderRiskRules({ window: '1h' });
    expect(text.split('\n')[0]).toMatch(/^# Generated by src\/telemetry\/risk-rules\.ts \(window 1h\)/);
    expect(text).toContain('npm run rules');
    expect(YAML.parse(text)).toEqual(JSON.parse(JSON.stringify(shipped)));
  });
});
