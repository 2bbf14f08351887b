import { type BypassCheck, type BypassPermission, bypassChecks, describeQuestion } from '../core/bypass-checks.ts';
import type { Policy } from '../core/types.ts';
import { compileAgentMatcher } from '../policy/agent-matcher.ts';
import { isLiteralGlob } from '../policy/glob.ts';
import type { AccessSubject, ResourceAccess } from './access-review.ts';
import { type KubeConnection, kubeFetch } from './kube-http.ts';

/** An agent identity to check: who, and the namespace its service account lives in. */
export interface AgentSubject {
  /** As shown: `system:serviceaccount:agents:agent-1`, a user name, or `group:NAME`. */
  readonly agent: string;
  readonly subject: AccessSubject;
  readonly namespace: string | undefined;
}

/** What one check found for one agent. */
export interface BypassFinding {
  readonly agent: string;
  readonly permission: BypassPermission;
  /** True when at least one question was answered yes. */
  readonly found: boolean;
  /** The questions answered yes, in kubectl's words: what to remove. */
  readonly grants: readonly string[];
  /** Questions that could not be answered (counted as not found; reported). */
  readonly unknown: number;
  readonly why: string;
}

/** Asks whether a subject may do something; undefined when that could not be learnt. */
export type AccessAsker = (subject: AccessSubject, access: ResourceAccess) => Promise<boolean | undefined>;

const SA_GROUPS = (namespace: string) => ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'];

/**
 * The agent identities of a policy set: every ServiceAccount of the cluster the policies'
 * matcher calls an agent (so globs and `namespaces` mean what they mean on the request
 * path), plus the users and groups the policies name literally (a user glob cannot be
 * enumerated; it is reported as such).
 */
export function agentSubjects(
  policies: readonly Policy[],
  serviceAccounts: readonly { readonly namespace: string; readonly name: string }[],
): { subjects: AgentSubject[]; unchecked: string[] } {
  const matcher = compileAgentMatcher(policies);
  const subjects = new Map<string, AgentSubject>();
  for (const sa of serviceAccounts) {
    const username = `system:serviceaccount:${sa.namespace}:${sa.name}`;
    const groups = SA_GROUPS(sa.namespace);
    if ('agent' in matcher.match({ username, groups })) subjects.set(username, { agent: username, subject: { user: username, groups }, namespace: sa.namespace });
  }
  const unchecked: string[] = [];
  for (const p of policies) {
    for (const user of p.agents.users) {
      if (!isLiteralGlob(user)) unchecked.push(`users "${user}" of policy ${p.name}: a glob cannot be listed`);
      else subjects.set(user, { agent: user, subject: { user, groups: ['system:authenticated'] }, namespace: undefined });
    }
    for (const group of p.agents.groups) {
      if (!isLiteralGlob(group)) unchecked.push(`groups "${group}" of policy ${p.name}: a glob cannot be listed`);
      else subjects.set(`group:${group}`, { agent: `group:${group}`, subject: { user: '', groups: [group] }, namespace: undefined });
    }
  }
  return { subjects: [...subjects.values()].sort((a, b) => a.agent.localeCompare(b.agent)), unchecked };
}

/** Every check for every subject, a few reviews at a time. */
export async function auditSubjects(subjects: readonly AgentSubject[], guardNamespace: string, ask: AccessAsker, concurrency = 4): Promise<BypassFinding[]> {
  const jobs = subjects.flatMap((s) => bypassChecks(guardNamespace, s.namespace).map((check) => ({ s, check })));
  const out: BypassFinding[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < jobs.length; i = next++) {
      const job = jobs[i];
      if (job) out[i] = await runCheck(job.s, job.check, ask);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return out;
}

async function runCheck(s: AgentSubject, check: BypassCheck, ask: AccessAsker): Promise<BypassFinding> {
  const grants: string[] = [];
  let unknown = 0;
  for (const q of check.questions) {
    const answer = await ask(s.subject, q);
    if (answer === true) grants.push(describeQuestion(q));
    else if (answer === undefined) unknown++;
  }
  return { agent: s.agent, permission: check.permission, found: grants.length > 0, grants, unknown, why: check.why };
}

/** Lists the cluster's ServiceAccounts (names only), page by page. */
export async function listServiceAccounts(connection: KubeConnection, signal?: AbortSignal): Promise<{ namespace: string; name: string }[]> {
  const out: { namespace: string; name: string }[] = [];
  let token: string | undefined;
  do {
    const query = new URLSearchParams({ limit: '500', ...(token ? { continue: token } : {}) });
    const res = await kubeFetch(connection, `/api/v1/serviceaccounts?${query}`, { method: 'GET', signal: signal ?? AbortSignal.timeout(30_000) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`listing serviceaccounts answered HTTP ${res.status}: ${text.slice(0, 200)}`);
    const body = JSON.parse(text) as { metadata?: { continue?: string }; items?: { metadata?: { name?: string; namespace?: string } }[] };
    for (const item of body.items ?? []) {
      const { name, namespace } = item.metadata ?? {};
      if (name && namespace) out.push({ namespace, name });
    }
    token = body.metadata?.continue || undefined;
  } while (token);
  return out;
}
