import type { UserInfo } from '../admission/review.ts';
import type { AgentIdentity, Policy } from '../core/types.ts';
import { compileGlob, type Glob } from './glob.ts';

const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';

/**
 * Identities that are never agents, whatever a policy's globs say: the control plane's
 * own controllers, the kubelets and kube-system's service accounts. Judging them would
 * let a broad glob stall the cluster's own reconciliation.
 */
export function controllerIdentity(username: string): string | undefined {
  if (username.startsWith(`${SERVICE_ACCOUNT_PREFIX}kube-system:`)) return 'a kube-system service account';
  if (username.startsWith('system:kube-')) return 'a control-plane component';
  if (username.startsWith('system:node:')) return 'a kubelet';
  return undefined;
}

/** Splits `system:serviceaccount:NS:NAME`; undefined for any other user name. */
export function parseServiceAccount(username: string): { namespace: string; name: string } | undefined {
  if (!username.startsWith(SERVICE_ACCOUNT_PREFIX)) return undefined;
  const rest = username.slice(SERVICE_ACCOUNT_PREFIX.length);
  const colon = rest.indexOf(':');
  if (colon <= 0 || colon === rest.length - 1) return undefined;
  return { namespace: rest.slice(0, colon), name: rest.slice(colon + 1) };
}

/** The outcome of matching a caller: an agent and its policies, or why it is not one. */
export type AgentMatch =
  | { readonly agent: AgentIdentity; readonly policies: readonly Policy[] }
  | { readonly skip: string };

interface CompiledPolicy {
  readonly policy: Policy;
  readonly serviceAccounts: readonly Glob[];
  readonly namespaces: readonly Glob[] | undefined;
  readonly users: readonly Glob[];
  readonly groups: readonly Glob[];
}

/** Matches callers against a policy set; compiled once per set so the request path only tests. */
export interface AgentMatcher {
  match(user: UserInfo): AgentMatch;
}

/** Compiles the globs of every policy in the set. */
export function compileAgentMatcher(policies: readonly Policy[]): AgentMatcher {
  const compiled: CompiledPolicy[] = policies.map((policy) => ({
    policy,
    serviceAccounts: policy.agents.serviceAccounts.map(compileGlob),
    namespaces: policy.namespaces?.map(compileGlob),
    users: policy.agents.users.map(compileGlob),
    groups: policy.agents.groups.map(compileGlob),
  }));
  return {
    match(user) {
      const controller = controllerIdentity(user.username);
      if (controller) return { skip: `${user.username} is ${controller}, never an agent` };
      const sa = parseServiceAccount(user.username);
      const saKey = sa ? `${sa.namespace}:${sa.name}` : undefined;
      const matched: Policy[] = [];
      for (const c of compiled) {
        if (matches(c, user, sa?.namespace, saKey)) matched.push(c.policy);
      }
      if (matched.length === 0) return { skip: `no policy names ${user.username}` };
      return { agent: { username: user.username, serviceAccount: sa, groups: user.groups }, policies: matched };
    },
  };
}

function matches(c: CompiledPolicy, user: UserInfo, saNamespace: string | undefined, saKey: string | undefined): boolean {
  if (saKey !== undefined && saNamespace !== undefined && c.serviceAccounts.some((g) => g.test(saKey))) {
    if (c.namespaces === undefined || c.namespaces.some((g) => g.test(saNamespace))) return true;
  }
  if (c.users.some((g) => g.test(user.username))) return true;
  return c.groups.length > 0 && user.groups.some((group) => c.groups.some((g) => g.test(group)));
}
