import { parseArgs } from 'node:util';
import { systemClock } from '../clock.ts';
import { agentSubjects, auditSubjects, listServiceAccounts } from '../cluster/bypass-audit.ts';
import { subjectAccessAsker } from '../cluster/bypass-monitor.ts';
import { formatProblem, loadPolicyPaths } from '../policy/policy-loader.ts';
import type { CliIo } from './check.ts';
import { connect, KUBE_FLAGS, KUBE_FLAGS_USAGE, outputFormat, printData, UsageError } from './kube-flags.ts';

/** The usage text of `replica-guard doctor`. */
export const DOCTOR_USAGE = `Usage: replica-guard doctor [--policies DIR] [-o table|json|yaml] [flags]

Checks whether the agents can get around the guard. Webhooks never see changes to
webhook configurations, and the guard's namespace and kube-system are outside its
webhooks, so there RBAC alone protects it. For every agent identity of the policies
(the cluster's ServiceAccounts the policies match, and the users and groups they name),
SubjectAccessReviews ask whether it can impersonate, escalate or bind roles, create role
bindings, change admission configuration, mint tokens for service accounts, run pods as
another service account outside the webhooks, or write in the guard's namespace or
kube-system. Each finding names the permission to remove. The guard runs the same check
on start and every doctor.interval, as replica_guard_agent_bypass_permission.

Exit code: 0 nothing found, 1 a finding (or the check could not run), 2 a usage error.

Flags:
      --policies DIR            the policy files (default policies/)
  -o, --output FORMAT           table (default), json or yaml
${KUBE_FLAGS_USAGE}`;

/** `replica-guard doctor`, with the operator's credentials. */
export async function runDoctor(args: readonly string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: [...args], options: { ...KUBE_FLAGS, policies: { type: 'string', default: 'policies/' } }, strict: true }));
    if (values.help) {
      io.out(DOCTOR_USAGE);
      return 0;
    }
    const format = outputFormat(values.output);
    const load = await loadPolicyPaths([values.policies]);
    const errors = load.problems.filter((p) => p.severity === 'error');
    if (errors.length > 0 || load.policies.length === 0) {
      for (const p of errors) io.err(formatProblem(p));
      io.err(`replica-guard doctor: no valid policy set in ${values.policies}`);
      return 1;
    }
    const connection = await connect(values);
    try {
      const { subjects, unchecked } = agentSubjects(load.policies, await listServiceAccounts(connection));
      for (const u of unchecked) io.err(`warning: ${u}`);
      const findings = await auditSubjects(subjects, values['guard-namespace'], subjectAccessAsker(connection, systemClock));
      const found = findings.filter((f) => f.found);
      const unknown = findings.reduce((n, f) => n + f.unknown, 0);
      const rows = found.map((f) => ({ agent: f.agent, permission: f.permission, remove: f.grants.join('; '), why: f.why }));
      printData(io, format, rows, ['agent', 'permission', 'remove', 'why']);
      if (format === 'table') io.out(`${subjects.length} agent identities checked, ${found.length} findings${unknown > 0 ? `, ${unknown} questions unanswered` : ''}`);
      return found.length > 0 || unknown > 0 ? 1 : 0;
    } finally {
      connection.close?.();
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`replica-guard doctor: ${(err as Error).message}\n\n${DOCTOR_USAGE}`);
      return 2;
    }
    io.err(`replica-guard doctor: ${(err as Error).message}`);
    return 1;
  }
}
