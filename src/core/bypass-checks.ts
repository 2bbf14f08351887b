/**
 * The permissions that let an agent get around the guard. Webhooks are never called for
 * changes to webhook configurations, and the guard's namespace (like kube-system) is
 * outside its own webhooks, so what protects the guard there is RBAC alone. Each check
 * is a set of questions for a SubjectAccessReview; any "yes" is a finding. Pure data.
 */

/** One question: may the subject do this verb on this resource, in this namespace ('' = cluster-wide)? */
export interface AccessQuestion {
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource?: string | undefined;
  readonly namespace: string;
}

/** The permissions looked for, as metric labels (a bounded set). */
export const BYPASS_PERMISSIONS = [
  'impersonate',
  'escalate',
  'bind',
  'create-role-bindings',
  'change-admission',
  'mint-tokens',
  'run-pods-as-other-service-accounts',
  'write-guard-namespace',
  'write-kube-system',
] as const;
export type BypassPermission = (typeof BYPASS_PERMISSIONS)[number];

/** One permission and the questions that reveal it. */
export interface BypassCheck {
  readonly permission: BypassPermission;
  /** What the permission lets the agent do, and so what to remove. */
  readonly why: string;
  readonly questions: readonly AccessQuestion[];
}

const RBAC = 'rbac.authorization.k8s.io';
const ADMISSION = 'admissionregistration.k8s.io';
const WRITE_VERBS = ['create', 'update', 'patch', 'delete'] as const;

const each = (verbs: readonly string[], group: string, resources: readonly string[], namespace: string): AccessQuestion[] =>
  verbs.flatMap((verb) => resources.map((resource) => ({ verb, group, resource, namespace })));

/** Writes that matter in a namespace the webhooks do not see. */
function writesIn(namespace: string): AccessQuestion[] {
  const verbs = ['create', 'update', 'delete'];
  return [
    ...each(verbs, '', ['configmaps', 'secrets', 'pods'], namespace),
    ...each(verbs, 'apps', ['deployments', 'daemonsets'], namespace),
    ...each(verbs, RBAC, ['rolebindings'], namespace),
  ];
}

/**
 * The checks for an agent whose identity lives in `agentNamespace` (undefined for a user
 * or a group), with the guard running in `guardNamespace`.
 */
export function bypassChecks(guardNamespace: string, agentNamespace: string | undefined): BypassCheck[] {
  const tokenNamespaces = agentNamespace === undefined ? [''] : ['', agentNamespace];
  return [
    {
      permission: 'impersonate',
      why: 'it can act as any user, group or service account, controllers and operators included',
      questions: each(['impersonate'], '', ['users', 'groups', 'serviceaccounts'], ''),
    },
    {
      permission: 'escalate',
      why: 'it can grant itself permissions it does not hold',
      questions: [...each(['escalate'], RBAC, ['clusterroles', 'roles'], ''), ...(agentNamespace ? each(['escalate'], RBAC, ['roles'], agentNamespace) : [])],
    },
    {
      permission: 'bind',
      why: 'it can bind roles it does not hold to itself',
      questions: [...each(['bind'], RBAC, ['clusterroles', 'roles'], ''), ...(agentNamespace ? each(['bind'], RBAC, ['clusterroles', 'roles'], agentNamespace) : [])],
    },
    {
      permission: 'create-role-bindings',
      why: 'with a bindable role it can give itself more',
      questions: [
        ...each(['create', 'update', 'patch'], RBAC, ['clusterrolebindings', 'rolebindings'], ''),
        ...(agentNamespace ? each(['create', 'update', 'patch'], RBAC, ['rolebindings'], agentNamespace) : []),
      ],
    },
    {
      permission: 'change-admission',
      why: 'it can remove or narrow the webhooks themselves, which no webhook sees',
      questions: each(WRITE_VERBS, ADMISSION, ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations', 'validatingadmissionpolicies', 'validatingadmissionpolicybindings'], ''),
    },
    {
      permission: 'mint-tokens',
      why: 'it can get tokens of other service accounts and act as them',
      questions: tokenNamespaces.map((namespace) => ({ verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token', namespace })),
    },
    {
      permission: 'run-pods-as-other-service-accounts',
      why: 'it can run pods as the powerful service accounts of namespaces the webhooks do not see',
      questions: [...new Set(['kube-system', guardNamespace])].flatMap((namespace) => [
        { verb: 'create', group: '', resource: 'pods', namespace },
        ...each(['create', 'update', 'patch'], 'apps', ['deployments', 'daemonsets'], namespace),
      ]),
    },
    {
      permission: 'write-guard-namespace',
      why: "it can change the guard's switches, ledger, certificates or deployment, outside the webhooks",
      questions: writesIn(guardNamespace),
    },
    {
      permission: 'write-kube-system',
      why: 'it can change kube-system, outside the webhooks',
      questions: writesIn('kube-system'),
    },
  ];
}

/** A question in kubectl's words: `create serviceaccounts/token in agents`, `impersonate users (cluster-wide)`. */
export function describeQuestion(q: AccessQuestion): string {
  const resource = `${q.resource}${q.subresource ? `/${q.subresource}` : ''}${q.group ? `.${q.group}` : ''}`;
  return `${q.verb} ${resource} ${q.namespace ? `in ${q.namespace}` : '(cluster-wide)'}`;
}
