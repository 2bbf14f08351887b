import type { ScaleResource } from './interpret.ts';
import { BUILT_IN_KINDS } from './workload-kinds.ts';

/** One rule of a Mutating/ValidatingWebhookConfiguration (admissionregistration.k8s.io/v1). */
export interface WebhookRule {
  readonly apiGroups: readonly string[];
  readonly apiVersions: readonly string[];
  readonly operations: readonly ('CREATE' | 'UPDATE' | 'DELETE')[];
  readonly resources: readonly string[];
  readonly scope: 'Namespaced' | 'Cluster';
}

/**
 * What the safety switches need to see: updates and deletions of ServiceAccounts and
 * Namespaces, which carry the `replica-guard.io/freeze` annotation (an agent may not change
 * it; an operator's is copied into the switch ConfigMap). Namespaces are cluster-scoped.
 */
const SWITCH_RULES: readonly WebhookRule[] = [
  { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE', 'DELETE'], resources: ['serviceaccounts'], scope: 'Namespaced' },
  { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE', 'DELETE'], resources: ['namespaces'], scope: 'Cluster' },
];

const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE'] as const;

/**
 * Every resource through which an agent can add instances, as webhook rules: the
 * built-in kinds, the `scale` subresource of those that have one, the configured
 * scale resources and the custom resources counted by paths. DELETE is included so that the view learns a workload is gone.
 * Last, the ServiceAccount and Namespace rules of the safety switches.
 * The chart renders exactly this list, and a test holds the two together.
 */
export function webhookRules(
  scaleResources: readonly ScaleResource[] = [],
  customResources: readonly { readonly group: string; readonly resource: string }[] = [],
): WebhookRule[] {
  const byGroup = new Map<string, Set<string>>();
  const add = (group: string, resource: string) => {
    const set = byGroup.get(group) ?? new Set<string>();
    set.add(resource);
    byGroup.set(group, set);
  };
  for (const kind of BUILT_IN_KINDS.values()) {
    add(kind.group, kind.resource);
    if (kind.scalable) add(kind.group, `${kind.resource}/scale`);
  }
  for (const r of scaleResources) {
    add(r.group, r.resource);
    add(r.group, `${r.resource}/scale`);
  }
  for (const r of customResources) add(r.group, r.resource);
  const workloads = [...byGroup.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([group, resources]): WebhookRule => ({
      apiGroups: [group],
      apiVersions: ['*'],
      operations: [...OPERATIONS],
      resources: [...resources].sort(),
      scope: 'Namespaced',
    }));
  return [...workloads, ...SWITCH_RULES];
}

/** The rules for the built-in kinds alone. */
export const WEBHOOK_RULES: readonly WebhookRule[] = webhookRules();
