import { compileGlob } from '../policy/glob.ts';
import type { AgentIdentity, PodServiceAccount, Policy } from './types.ts';

/** The token in `podServiceAccounts` that stands for the agent's own service account name. */
export const SELF_TOKEN = '{self}';

/**
 * Whether pods may run as this service account under the policy. Patterns without a
 * colon match the name in any namespace; `namespace:name` patterns match both. By
 * default an agent's pods may run only as its own service account (by name, so a clone
 * in another namespace stays recognisable); an agent that is a user or group gets
 * `default`, which is what a pod without `serviceAccountName` runs as.
 */
export function serviceAccountAllowed(sa: PodServiceAccount, policy: Policy, agent: AgentIdentity): boolean {
  const patterns = policy.podServiceAccounts ?? (agent.serviceAccount ? [SELF_TOKEN] : ['default']);
  return patterns.some((pattern) => {
    if (pattern === SELF_TOKEN) return agent.serviceAccount !== undefined && sa.name === agent.serviceAccount.name;
    return pattern.includes(':')
      ? compileGlob(pattern).test(`${sa.namespace}:${sa.name}`)
      : compileGlob(pattern).test(sa.name);
  });
}
