import type { AlertingRule } from './risk-rules.ts';

/**
 * Alerts on the guard's own webhook configurations (cluster/webhook-reconciler.ts): one
 * taken over by hand, one changed behind the guard, one the guard cannot put back. Every
 * replica reconciles and exports the same state, so the gauges are combined with max/min.
 */
export function webhookConfigurationAlerts(): AlertingRule[] {
  return [
    {
      alert: 'ReplicaGuardWebhookConfigurationUnmanaged',
      expr: 'max by (configuration) (replica_guard_webhook_configuration_unmanaged) == 1',
      for: '1m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'A replica-guard webhook configuration is edited by hand.',
        description:
          'The {{ $labels.configuration }} webhook configuration carries replica-guard.io/unmanaged=true: the guard does not restore it, so agents may be unprotected.',
        runbook: 'Finish the emergency edit, then remove the label (kubectl label ... replica-guard.io/unmanaged-): the guard puts the configuration back as declared.',
      },
    },
    {
      alert: 'ReplicaGuardWebhookConfigurationRestored',
      expr: 'sum by (configuration) (increase(replica_guard_webhook_configuration_restores_total[10m])) > 0',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'A replica-guard webhook configuration was changed behind the guard.',
        description: 'The {{ $labels.configuration }} webhook configuration drifted from its declaration and was put back in the last 10m.',
        runbook: 'Find who changed it in the API server audit log; the guard log lists the fields. Use helm upgrade, or the unmanaged label, for intended changes.',
      },
    },
    {
      alert: 'ReplicaGuardWebhookConfigurationOutOfSync',
      expr:
        'min by (configuration) (replica_guard_webhook_configuration_in_sync) == 0 ' +
        'unless on (configuration) max by (configuration) (replica_guard_webhook_configuration_unmanaged) == 1',
      for: '5m',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'replica-guard cannot keep its webhook configuration as declared.',
        description: 'The {{ $labels.configuration }} webhook configuration differs from its declaration and the guard cannot put it back.',
        runbook: 'The guard log says why (a missing permission names the verb and resource; a missing configuration needs helm upgrade).',
      },
    },
  ];
}
