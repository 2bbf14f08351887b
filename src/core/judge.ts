import { countUnderPolicy, highestSteadyWithin, potentialOf } from './instances.ts';
import { justificationViolation } from './justification.ts';
import { serviceAccountAllowed } from './pod-service-accounts.ts';
import type { AgentIdentity, LimitName, Limits, NeedFact, Policy, PolicyFacts, WorkloadChange } from './types.ts';

/** A limit that bounds the steady count, with the value it allows. */
export interface Bound {
  readonly limit: LimitName;
  /** The highest steady count this limit allows for this request. */
  readonly allows: number;
  /** How the value came about, in words (`need 3 + headroom 1`). */
  readonly detail: string;
}

/** Something wrong with a request that lowering the count cannot fix. */
export interface Violation {
  readonly limit: LimitName;
  readonly message: string;
  /** The object field at fault, in Kubernetes' dotted form, when there is one. */
  readonly field?: string | undefined;
  /** A stable error code when the violation is the guard's own limitation, not the request's. */
  readonly code?: 'RG_ERR_FACT_UNAVAILABLE' | undefined;
}

/** One policy's view of one request. Pure data, built by {@link judge}. */
export interface Judgement {
  readonly policy: Policy;
  /** True when the request raises the steady or potential count, or creates a workload. */
  readonly growth: boolean;
  /** Steady count before (0 on CREATE) and after the request. */
  readonly from: number;
  readonly to: number;
  readonly need: NeedFact;
  /** The need the allowance used; null when judged by caps alone. */
  readonly needUsed: number | null;
  /** True when a fact was missing and `onUnavailable` (hold or caps) stood in for it. */
  readonly fallback: boolean;
  /** Every limit that bounds the steady count, lowest first. */
  readonly bounds: readonly Bound[];
  /** The highest steady count the policy allows; null when nothing bounds it. */
  readonly allowance: number | null;
  /** True when the request grows the steady count past the allowance. */
  readonly overAllowance: boolean;
  /** Where a clamp would lower the count to; null when it cannot be clamped. */
  readonly clampTo: number | null;
  readonly violations: readonly Violation[];
  /** Notes for a request that is allowed but leaves something over a cap. */
  readonly warnings: readonly string[];
}

const BOUND_ORDER: readonly LimitName[] = ['perWorkload', 'perFamily', 'rate', 'step', 'need'];

/**
 * Judges one change against one policy. Pure: the facts (need, family) are gathered
 * by the caller, so this can be tested, replayed and property-checked without a server.
 */
export function judge(change: WorkloadChange, policy: Policy, facts: PolicyFacts, agent: AgentIdentity): Judgement {
  const violations: Violation[] = [];
  const warnings: string[] = [];
  const pressured = facts.underPressure === true && policy.underPressure !== undefined;
  const limits = pressured && policy.underPressure ? tighter(policy.limits, policy.underPressure.limits) : policy.limits;

  for (const sa of change.podServiceAccounts) {
    if (!serviceAccountAllowed(sa, policy, agent)) {
      violations.push({
        limit: 'podServiceAccounts',
        field: `${sa.field}.serviceAccountName`,
        message: `pods may not run as service account "${sa.name}" (namespace ${sa.namespace}); allowed: ${describeAllowedAccounts(policy, agent)}`,
      });
    }
  }
  if (change.reservedAnnotationChanges.length > 0) {
    violations.push({
      limit: 'reservedAnnotations',
      field: 'metadata.annotations',
      message: `agents may not write ${change.reservedAnnotationChanges.map((k) => `"${k}"`).join(', ')}; the only replica-guard.io key an agent may write is replica-guard.io/justification`,
    });
  }

  const before = change.before && countUnderPolicy(change.before, limits);
  const after = change.after && countUnderPolicy(change.after, limits);
  if (change.uncountable !== undefined) {
    violations.push({ limit: 'onUnavailable', message: change.uncountable, code: 'RG_ERR_FACT_UNAVAILABLE' });
  }
  const from = before?.steady ?? 0;
  const to = after?.steady ?? 0;
  const potentialFrom = before ? potentialOf(before) : 0;
  const potentialTo = after ? potentialOf(after) : 0;
  const growth =
    after !== null && (change.createsWorkload || to > from || potentialTo > potentialFrom);

  const base = { policy, from, to, need: facts.need };
  if (!growth) {
    if (after !== null) {
      if (limits.perWorkload !== undefined && to > limits.perWorkload) {
        warnings.push(`${describeRef(change)} still runs ${to}, above perWorkload ${limits.perWorkload} of policy ${policy.name}`);
      }
      if (limits.perFamily !== undefined && facts.family && facts.family.potential + potentialTo > limits.perFamily) {
        warnings.push(
          `the family still has ${facts.family.potential + potentialTo} potential instances, above perFamily ${limits.perFamily} of policy ${policy.name}`,
        );
      }
    }
    return {
      ...base,
      growth,
      needUsed: null,
      fallback: false,
      bounds: [],
      allowance: null,
      overAllowance: false,
      clampTo: null,
      violations,
      warnings,
    };
  }

  const missing: string[] = [...change.unknownFacts];
  if (facts.need.kind === 'unavailable') missing.push(facts.need.reason);
  const familyLimited = limits.perFamily !== undefined || limits.workloadsPerFamily !== undefined;
  if (familyLimited && facts.family === undefined) missing.push("the agent's family is unknown");
  if (limits.rate !== undefined && facts.rateUsed === undefined) {
    missing.push('the instances the family added recently are unknown');
  }

  let needUsed: number | null = null;
  let fallback = false;
  if (missing.length > 0) {
    fallback = true;
    switch (policy.need.onUnavailable) {
      case 'deny':
        violations.push({
          limit: 'onUnavailable',
          code: 'RG_ERR_FACT_UNAVAILABLE',
          message: `the guard cannot judge this growth (${missing.join('; ')}) and policy ${policy.name} denies growth then`,
        });
        break;
      case 'hold':
        needUsed = from;
        break;
      case 'caps':
        break;
    }
  } else if (facts.need.kind === 'measured') {
    needUsed = facts.need.value;
  }

  const bounds: Bound[] = [];
  if (needUsed !== null) {
    const headroom = limits.headroom ?? 0;
    bounds.push({
      limit: 'need',
      allows: needUsed + headroom,
      detail: `need ${needUsed}${fallback ? ' (held at the current count)' : ''}${headroom > 0 ? ` + headroom ${headroom}` : ''}`,
    });
  }
  if (limits.perWorkload !== undefined) {
    bounds.push({ limit: 'perWorkload', allows: limits.perWorkload, detail: `perWorkload ${limits.perWorkload}` });
  }
  if (limits.step !== undefined) {
    bounds.push({ limit: 'step', allows: from + limits.step, detail: `${from} + step ${limits.step}` });
  }
  const family = facts.family;
  if (limits.perFamily !== undefined && family && after) {
    const room = limits.perFamily - family.potential;
    bounds.push({
      limit: 'perFamily',
      allows: highestSteadyWithin(room, after.extra),
      detail: `perFamily ${limits.perFamily} potential instances, ${family.potential} held by the rest of the family`,
    });
    if (!(to > from) && potentialTo > potentialFrom && family.potential + potentialTo > limits.perFamily) {
      violations.push({
        limit: 'perFamily',
        message: `this change raises the family's potential instances to ${family.potential + potentialTo}, above perFamily ${limits.perFamily}`,
      });
    }
  }
  if (limits.rate !== undefined && facts.rateUsed !== undefined && after) {
    const used = facts.rateUsed(limits.rate.perMs);
    const remaining = Math.max(0, limits.rate.instances - used);
    bounds.push({
      limit: 'rate',
      allows: highestSteadyWithin(potentialFrom + remaining, after.extra),
      detail: `rate ${limits.rate.instances} instances per ${formatWindow(limits.rate.perMs)}, ${used} used`,
    });
  }
  if (limits.workloadsPerFamily !== undefined && family && change.createsWorkload) {
    if (family.workloads + 1 > limits.workloadsPerFamily) {
      violations.push({
        limit: 'workloadsPerFamily',
        message: `the family already has ${family.workloads} workloads and policy ${policy.name} allows ${limits.workloadsPerFamily}`,
      });
    }
  }

  // A clone is the agent replicating itself: no load asked for it, so no headroom or cap
  // makes room for it while the policy forbids clones.
  if (facts.clonedMember !== undefined && policy.clones?.allowed !== true) {
    violations.push({
      limit: 'clones',
      message: `${describeRef(change)} clones ${facts.clonedMember} of the agent's family (same service account and image), and policy ${policy.name} does not allow clones`,
    });
  }
  const unjustified = justificationViolation(policy, change, { to, needUsed }, facts.justification);
  if (unjustified) violations.push(unjustified);

  bounds.sort((a, b) => a.allows - b.allows || BOUND_ORDER.indexOf(a.limit) - BOUND_ORDER.indexOf(b.limit));
  const lowest = bounds[0];
  const allowance = lowest ? Math.max(0, lowest.allows) : null;
  const overAllowance = allowance !== null && to > from && to > allowance;
  // Clamping below what already runs would turn the agent's request into a scale-down
  // it never asked for; such a request is denied instead.
  const clampable =
    change.clamp !== null && allowance !== null && allowance >= from && allowance >= (change.clamp.minimum ?? 0);
  const clampTo = overAllowance && clampable ? allowance : null;

  return { ...base, growth, needUsed, fallback, bounds, allowance, overAllowance, clampTo, violations, warnings };
}

/**
 * The limits under survival pressure: both sets apply, field by field the tighter one,
 * so pressure can only restrict (a field the pressure set leaves out keeps its usual limit).
 */
export function tighter(base: Limits, pressure: Limits): Limits {
  const pick = (a: number | undefined, b: number | undefined) =>
    a === undefined ? b : b === undefined ? a : Math.min(a, b);
  const rate =
    base.rate && pressure.rate
      ? base.rate.instances * pressure.rate.perMs <= pressure.rate.instances * base.rate.perMs
        ? base.rate
        : pressure.rate
      : (base.rate ?? pressure.rate);
  return {
    headroom: pick(base.headroom, pressure.headroom),
    perWorkload: pick(base.perWorkload, pressure.perWorkload),
    perFamily: pick(base.perFamily, pressure.perFamily),
    workloadsPerFamily: pick(base.workloadsPerFamily, pressure.workloadsPerFamily),
    step: pick(base.step, pressure.step),
    cronJobOverlap: base.cronJobOverlap ?? pressure.cronJobOverlap,
    rate,
  };
}

function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

/** The limit that set the allowance, if any. */
export function bindingBound(j: Judgement): Bound | undefined {
  return j.overAllowance ? j.bounds[0] : undefined;
}

function describeAllowedAccounts(policy: Policy, agent: AgentIdentity): string {
  const patterns = policy.podServiceAccounts ?? (agent.serviceAccount ? ['{self}'] : ['default']);
  return patterns
    .map((p) => (p === '{self}' && agent.serviceAccount ? `"${agent.serviceAccount.name}" (its own)` : `"${p}"`))
    .join(', ');
}

function describeRef(change: WorkloadChange): string {
  return `${change.ref.kind} ${change.ref.namespace ? `${change.ref.namespace}/` : ''}${change.ref.name}`;
}
