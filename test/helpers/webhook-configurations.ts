import YAML from 'yaml';
import type { KubeObject, ResourceType } from '../fake-apiserver/fake-apiserver.ts';

/** What the guard reads and writes besides the fake's own resources: its Secret, its two configurations, the endpoints of its Service. */
export const GUARD_RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  { group: 'admissionregistration.k8s.io', version: 'v1', resource: 'mutatingwebhookconfigurations', kind: 'MutatingWebhookConfiguration', namespaced: false },
  { group: 'admissionregistration.k8s.io', version: 'v1', resource: 'validatingwebhookconfigurations', kind: 'ValidatingWebhookConfiguration', namespaced: false },
  { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', kind: 'EndpointSlice', namespaced: true },
];

export const NAMESPACE = 'replica-guard';
export const NAME = 'rg-replica-guard';

/** One webhook as the chart declares it. */
export function declaredWebhook(kind: 'mutate' | 'validate', namespace = NAMESPACE): Record<string, unknown> {
  return {
    name: `${kind}.replica-guard.io`,
    admissionReviewVersions: ['v1'],
    sideEffects: 'NoneOnDryRun',
    failurePolicy: 'Fail',
    timeoutSeconds: 10,
    ...(kind === 'mutate' ? { reinvocationPolicy: 'IfNeeded' } : {}),
    clientConfig: { service: { name: NAME, namespace, path: `/${kind}`, port: 443 } },
    namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [namespace, 'kube-system'] }] },
    matchConditions: [
      { name: 'not-kube-system-service-accounts', expression: "!request.userInfo.username.startsWith('system:serviceaccount:kube-system:')" },
      { name: 'agents', expression: "request.userInfo.username.startsWith('system:serviceaccount:agents:')" },
    ],
    rules: [{ apiGroups: ['apps'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['deployments', 'deployments/scale'], scope: 'Namespaced' }],
  };
}

/** Both configurations as the chart declares them. */
export function declaredConfigurations(): KubeObject[] {
  return [
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: NAME }, webhooks: [declaredWebhook('mutate')] },
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: NAME }, webhooks: [declaredWebhook('validate')] },
  ];
}

/** The chart's desired-state ConfigMap holding `webhooks.yaml`. */
export function desiredConfigMap(configurations: readonly KubeObject[] = declaredConfigurations()): KubeObject {
  return {
    metadata: { name: `${NAME}-webhooks`, namespace: NAMESPACE },
    data: { 'webhooks.yaml': configurations.map((c) => YAML.stringify(c)).join('---\n') },
  };
}

/** The configurations as the API server serves them after helm created them: with the server's defaults. */
export function servedConfigurations(): { resource: string; object: KubeObject }[] {
  return declaredConfigurations().map((c) => ({
    resource: c.kind === 'MutatingWebhookConfiguration' ? 'mutatingwebhookconfigurations' : 'validatingwebhookconfigurations',
    object: {
      ...c,
      webhooks: (c.webhooks as Record<string, unknown>[]).map((w) => ({ ...w, matchPolicy: 'Equivalent', objectSelector: {} })),
    },
  }));
}
