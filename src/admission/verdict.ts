import type { Judgement } from '../core/judge.ts';
import { pointerToField, type Resolution } from '../core/resolve.ts';
import type { Policy, WorkloadChange } from '../core/types.ts';
import { clampPatch } from './clamp-patch.ts';
import { allowed, type Cause, type Decision, denied, patched, withAuditAnnotations, withWarnings } from './decision.ts';

/** Which of the two webhooks is answering. */
export type Webhook = 'mutate' | 'validate';

/**
 * Whether the mutating webhook decides for an agent under these policies. Only a clamp
 * makes it answer anything but "allowed", and only a clamp policy clamps: break-glass and
 * exemptions turn policies to audit, and a freeze turns growth into a denial, which the
 * mutating call answers as "allowed" too. Without a clamp policy the validating call that
 * follows decides, warns, records and audits the same request, and the mutating call is
 * allowed at once.
 */
export function mutatingCallDecides(policies: readonly Pick<Policy, 'mode'>[]): boolean {
  return policies.some((p) => p.mode === 'clamp');
}

/**
 * Turns a resolution into the decision one webhook answers. The mutating webhook never
 * denies (the validating call records the episode, so it must be reached): it patches a
 * clamp or lets the request through. The validating webhook denies, and also denies a
 * clamp it still sees, since the mutating call should have lowered the count already.
 */
export function decisionFor(webhook: Webhook, change: WorkloadChange, resolution: Resolution): Decision {
  switch (resolution.type) {
    case 'allow':
      return withWarnings(allowed(), resolution.warnings);
    case 'clamp': {
      const j = resolution.judgement;
      const annotations = { verdict: 'clamped', policy: j.policy.name, limit: j.bounds[0]?.limit ?? 'need' };
      if (webhook === 'validate' || change.clamp === null) {
        const d = denied(
          `${describe(change, j)}: policy ${j.policy.name} (clamp mode) allows at most ${resolution.to}, and the mutating webhook did not lower it`,
          causesOf(change, j),
        );
        return withAuditAnnotations(withWarnings(d, resolution.warnings), { ...annotations, verdict: 'denied' });
      }
      const warning = `replica-guard lowered ${fieldOf(change)} from ${j.to} to ${resolution.to}: policy ${j.policy.name} allows at most ${resolution.to} (${j.bounds[0]?.detail ?? ''})`;
      return withAuditAnnotations(
        withWarnings(patched(clampPatch(change.clamp, resolution.to)), [warning, ...resolution.warnings]),
        annotations,
      );
    }
    case 'deny': {
      const j = resolution.judgement;
      const limit = resolution.violations[0]?.limit ?? 'need';
      if (webhook === 'mutate') return withWarnings(allowed(), resolution.warnings);
      const reasons = resolution.violations.map((v) => (v.code ? `${v.code}: ${v.message}` : v.message)).join('; ');
      const advice = adviceFor(change, j, limit);
      const causes = causesOf(change, j);
      // Every denial names the limit that decided, also one no lower count would satisfy.
      const first = resolution.violations[0];
      if (first && !causes.some((c) => c.reason === 'Limit')) {
        causes.push({ reason: 'Limit', message: `${first.limit}: ${first.message}` });
      }
      const d = denied(`${describe(change, j)}: ${reasons}.${advice ? ` ${advice}` : ''}`, [
        ...causes,
        ...resolution.violations.map((v) => ({ reason: v.code ?? v.limit, message: v.message, field: v.field })),
      ]);
      const code = resolution.violations.find((v) => v.code)?.code;
      return withAuditAnnotations(withWarnings(d, resolution.warnings), {
        verdict: 'denied',
        policy: j.policy.name,
        limit,
        ...(code ? { code } : {}),
      });
    }
  }
}

function describe(change: WorkloadChange, j: Judgement): string {
  const where = `${change.ref.kind} ${change.ref.namespace ? `${change.ref.namespace}/` : ''}${change.ref.name}`;
  if (change.operation === 'CREATE') return `replica-guard denied creating ${where} with ${j.to} instances`;
  if (j.to !== j.from) return `replica-guard denied scaling ${where} from ${j.from} to ${j.to}`;
  return `replica-guard denied this change to ${where}`;
}

function adviceFor(change: WorkloadChange, j: Judgement, limit: string): string {
  if (limit === 'podServiceAccounts') return "Run the pods as the agent's own service account.";
  if (limit === 'reservedAnnotations') return 'Remove those annotations from the request.';
  if (limit === 'clones') {
    return `Scale the existing workload instead, within its allowance; if clones are intended, set clones.allowed: true in policy ${j.policy.name} (or list a shared base image under clones.ignoreImages).`;
  }
  if (limit === 'workloadsPerFamily') return 'Scale an existing workload of the family instead, within its allowance.';
  if (limit === 'onUnavailable') return 'Retry later, or ask a platform engineer.';
  // The switch's own message says what is allowed and who can lift it.
  if (limit === 'freeze' || limit === 'justification') return '';
  if (j.allowance === null) return '';
  if (j.allowance <= j.from) {
    if (change.operation === 'CREATE') return `The policy allows no new instances of it now (allowance ${j.allowance}).`;
    return `It may not grow now (allowance ${j.allowance}); it may keep ${j.from} or scale down.`;
  }
  if (change.ref.kind === 'DaemonSet') {
    return `Narrow its nodeSelector or node affinity to at most ${j.allowance} nodes.`;
  }
  if (change.clamp === null) return `The family may add at most ${j.allowance} such instances now.`;
  return `Ask for at most ${j.allowance} (${pointerToField(change.clamp.path)}: ${j.allowance}).`;
}

function fieldOf(change: WorkloadChange): string {
  return change.clamp ? pointerToField(change.clamp.path) : 'the count';
}

function causesOf(change: WorkloadChange, j: Judgement): Cause[] {
  const field = change.clamp ? pointerToField(change.clamp.path) : undefined;
  const causes: Cause[] = [
    { reason: 'Requested', message: String(j.to), field },
    { reason: 'Current', message: String(j.from) },
    { reason: 'Policy', message: j.policy.name },
  ];
  if (j.needUsed !== null) causes.push({ reason: 'Need', message: String(j.needUsed) });
  if (j.allowance !== null) causes.push({ reason: 'Allowance', message: String(j.allowance) });
  const bound = j.bounds[0];
  if (j.overAllowance && bound) causes.push({ reason: 'Limit', message: `${bound.limit}: ${bound.detail}` });
  return causes;
}
