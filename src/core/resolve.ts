import type { Judgement, Violation } from './judge.ts';
import type { WorkloadChange } from './types.ts';

/** What the policies together make of a request, before it is turned into a response. */
export type Resolution =
  | { readonly type: 'allow'; readonly warnings: readonly string[] }
  | {
      readonly type: 'deny';
      readonly judgement: Judgement;
      readonly violations: readonly Violation[];
      readonly warnings: readonly string[];
    }
  | { readonly type: 'clamp'; readonly to: number; readonly judgement: Judgement; readonly warnings: readonly string[] };

/**
 * Combines the judgements of every policy that matched the agent (DESIGN.md, "Decisions
 * per policy mode"): any enforce denial wins; otherwise the lowest allowance of the
 * enforce and clamp policies applies; audit policies never change the outcome, they warn.
 */
export function resolve(change: WorkloadChange, judgements: readonly Judgement[]): Resolution {
  const warnings: string[] = [];
  for (const j of judgements) warnings.push(...j.warnings);
  for (const j of judgements) {
    if (j.policy.mode !== 'audit') continue;
    const v = denialReasons(change, j);
    if (v.length > 0) warnings.push(`audit: policy ${j.policy.name} would deny: ${v.map((x) => x.message).join('; ')}`);
  }

  const enforcing = judgements.filter((j) => j.policy.mode === 'enforce');
  for (const j of enforcing) {
    const v = denialReasons(change, j);
    if (v.length > 0) return { type: 'deny', judgement: j, violations: v, warnings };
  }

  const clamping = judgements.filter((j) => j.policy.mode === 'clamp');
  for (const j of clamping) {
    const v = [...j.violations];
    if (j.overAllowance && j.clampTo === null) v.push(unclampable(change, j));
    if (v.length > 0) return { type: 'deny', judgement: j, violations: v, warnings };
  }

  let lowest: Judgement | undefined;
  for (const j of clamping) {
    if (j.clampTo === null) continue;
    if (lowest === undefined || (lowest.clampTo !== null && j.clampTo < lowest.clampTo)) lowest = j;
  }
  if (lowest && lowest.clampTo !== null) return { type: 'clamp', to: lowest.clampTo, judgement: lowest, warnings };
  return { type: 'allow', warnings };
}

/** Why a policy in enforce mode denies this request; empty when it allows it. */
function denialReasons(change: WorkloadChange, j: Judgement): Violation[] {
  const v = [...j.violations];
  if (j.overAllowance) v.push(overAllowanceViolation(change, j));
  return v;
}

function overAllowanceViolation(change: WorkloadChange, j: Judgement): Violation {
  const bound = j.bounds[0];
  // The need is part of every such message (an agent acts on it), also when a cap bound.
  const need = j.needUsed !== null && bound?.limit !== 'need' ? `; the need is ${j.needUsed}` : '';
  return {
    limit: bound?.limit ?? 'need',
    field: change.clamp ? pointerToField(change.clamp.path) : undefined,
    message: `asked for ${j.to}, policy ${j.policy.name} allows at most ${j.allowance ?? 0} (${bound?.detail ?? 'no detail'}${need})`,
  };
}

function unclampable(change: WorkloadChange, j: Judgement): Violation {
  const base = overAllowanceViolation(change, j);
  const why =
    change.clamp === null
      ? `a ${change.ref.kind} cannot be clamped`
      : `it already runs ${j.from}, above what the policy allows, and a clamp never scales below what runs`;
  return { ...base, message: `${base.message}; ${why}` };
}

/** `/spec/jobTemplate/spec/parallelism` → `spec.jobTemplate.spec.parallelism`. */
export function pointerToField(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}
