import { type Judgement, judge } from '../core/judge.ts';
import { type Resolution, resolve } from '../core/resolve.ts';
import type { AgentIdentity, FamilyFact, JustificationFact, NeedFact, Policy, WorkloadChange } from '../core/types.ts';
import type { Decision } from './decision.ts';
import { decisionFor, type Webhook } from './verdict.ts';

/**
 * What one policy's judgement consults besides the change: the webhook gathers it from the
 * view and the ledger, a replay from a recording. Functions where the policy chooses what
 * is asked (a rate window, a pressure window, a clone check only on CREATE).
 */
export interface DecisionFacts {
  /** The need from the policy's load source, before a clone's need of 0 replaces it. */
  readonly need: NeedFact;
  /** Undefined when the family is unknown. */
  readonly family: FamilyFact | undefined;
  /**
   * The family member the new workload's pods clone, as `Kind namespace/name`, or
   * undefined (asked only of a CREATE with pods).
   */
  readonly clonedMember: () => string | undefined;
  /** Potential instances the family added within a window; undefined when it cannot be told. */
  readonly rateUsed: ((windowMs: number) => number) | undefined;
  /** Instances the family lost within a window. */
  readonly lossesWithin: (windowMs: number) => number;
  /** The justification the change carries and whether it is fresh; absent: none was looked at. */
  readonly justification?: JustificationFact | undefined;
}

/** What the policies made of one change for one webhook. */
export interface Decided {
  readonly judgements: readonly Judgement[];
  readonly resolution: Resolution;
  readonly decision: Decision;
  /** The judgement whose numbers describe the request. */
  readonly lead: Judgement | undefined;
}

/**
 * Judges a change under every matching policy, resolves the judgements and turns the
 * resolution into this webhook's decision. The webhook and `replica-guard replay` both
 * decide here, so a replay with the recorded facts is the webhook's decision. `stale`
 * names why the view's facts are unknown: the family is then unknown too.
 */
export function decide(
  webhook: Webhook,
  change: WorkloadChange,
  policies: readonly Policy[],
  agent: AgentIdentity,
  factsOf: (policy: Policy, index: number) => DecisionFacts,
  stale?: string | undefined,
): Decided {
  const judged: WorkloadChange = stale ? { ...change, unknownFacts: [...change.unknownFacts, stale] } : change;
  const judgements = policies.map((policy, i) => {
    const facts = factsOf(policy, i);
    // A clone's need is 0: the whole clone is surplus unless the policy allows clones.
    const cloned =
      change.createsWorkload && change.pods !== undefined && policy.clones?.allowed !== true ? facts.clonedMember() : undefined;
    const need: NeedFact = cloned !== undefined ? { kind: 'measured', value: 0, source: 'clone' } : facts.need;
    const pressured = policy.underPressure !== undefined && facts.lossesWithin(policy.underPressure.windowMs) > 0;
    return judge(
      judged,
      policy,
      {
        need,
        family: stale ? undefined : facts.family,
        rateUsed: facts.rateUsed,
        underPressure: pressured,
        clonedMember: cloned,
        justification: facts.justification,
      },
      agent,
    );
  });
  const resolution = resolve(change, judgements);
  const decision = decisionFor(webhook, change, resolution);
  return { judgements, resolution, decision, lead: leadJudgement(judgements, resolution) };
}

/** The judgement whose numbers describe the request: the one that decided, else the tightest. */
export function leadJudgement(judgements: readonly Judgement[], resolution: Resolution): Judgement | undefined {
  if (resolution.type !== 'allow') return resolution.judgement;
  let best: Judgement | undefined;
  for (const j of judgements) {
    if (j.policy.mode === 'audit' && best) continue;
    if (!best || (best.policy.mode === 'audit' && j.policy.mode !== 'audit')) best = j;
    else if (j.allowance !== null && (best.allowance === null || j.allowance < best.allowance)) best = j;
  }
  return best;
}
