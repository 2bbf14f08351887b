/**
 * What the fake's SubjectAccessReviews answer from: RBAC-like rules a test configures,
 * each granting verbs on resources to users and groups, optionally only in some
 * namespaces and on some names. A rule with none of the subject lists set grants nobody.
 * `*` in verbs, apiGroups or resources matches anything, as RBAC's wildcard does; a
 * subresource is named `resource/subresource` and is not granted by `resource` alone.
 */
export interface AccessRule {
  readonly users?: readonly string[];
  readonly groups?: readonly string[];
  readonly verbs: readonly string[];
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  /** Absent: every namespace (a ClusterRoleBinding); present: a RoleBinding in each. */
  readonly namespaces?: readonly string[];
  readonly resourceNames?: readonly string[];
}

/** The parts of a SubjectAccessReview's spec the rules are checked against. */
export interface AccessRequest {
  readonly user: string | undefined;
  readonly groups: readonly string[];
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
}

const anyOf = (list: readonly string[], value: string) => list.includes('*') || list.includes(value);

/** Whether any rule allows the request: RBAC is a union of grants, with no denials. */
export function allowedByRules(rules: readonly AccessRule[], request: AccessRequest): boolean {
  const resource = request.subresource ? `${request.resource}/${request.subresource}` : request.resource;
  return rules.some(
    (rule) =>
      ((request.user !== undefined && (rule.users ?? []).includes(request.user)) ||
        request.groups.some((g) => (rule.groups ?? []).includes(g))) &&
      anyOf(rule.verbs, request.verb) &&
      anyOf(rule.apiGroups, request.group) &&
      anyOf(rule.resources, resource) &&
      (rule.namespaces === undefined || rule.namespaces.includes(request.namespace)) &&
      (rule.resourceNames === undefined || rule.resourceNames.includes(request.name)),
  );
}
