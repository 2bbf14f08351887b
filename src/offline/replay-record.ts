import { decide, type DecisionFacts } from '../admission/decide.ts';
import { interpretRequest, type ScaleResource } from '../admission/interpret.ts';
import { parseAdmissionReview } from '../admission/review.ts';
import type { WorkloadKind } from '../admission/workload-kinds.ts';
import type { RiskEpisode } from '../core/risk.ts';
import { staticNeed } from '../core/static-need.ts';
import type { Policy } from '../core/types.ts';
import type { AgentMatcher } from '../policy/agent-matcher.ts';
import { factsFromRecord, type RecordedPolicyFacts } from '../record/consulted-facts.ts';
import { RecordedView } from '../record/recorded-view.ts';
import { type RecordedVerdict, type ReviewRecord, verdictOfDecision } from '../record/review-record.ts';

/** The verdict fields a replay compares: what the validating webhook answered. */
export type ComparedVerdict = Pick<RecordedVerdict, 'decision' | 'policy' | 'limit' | 'code' | 'message'>;

/** What the policies of a replay make of one recorded review. */
export type Replayed =
  | {
      readonly type: 'decided';
      readonly verdict: ComparedVerdict;
      /** The episode under the replayed policies, when the recorded review was a counted episode. */
      readonly episode: RiskEpisode | undefined;
    }
  /** Decided by the deadline's fallback: no facts were gathered, so there is nothing to replay. */
  | { readonly type: 'not-replayable'; readonly reason: string };

/** The policies a replay decides with, and how requests are interpreted. */
export interface ReplayPolicies {
  readonly policies: readonly Policy[];
  readonly matcher: AgentMatcher;
  readonly scaleResources: readonly ScaleResource[];
  readonly customKinds: readonly WorkloadKind[];
}

const hasLoadSource = (p: Policy) => p.need.prometheus !== undefined || p.need.metricsApi !== undefined || p.need.hpa !== undefined;

/**
 * The recorded facts a policy decides on. A policy without a load source has its own
 * static need (a function of the policy alone). Otherwise it reads the facts recorded for
 * the policy of the same name, else those of the policy that decided, else the first.
 */
function recordedFactsFor(record: ReviewRecord, policy: Policy): DecisionFacts | undefined {
  const all = record.facts.policies;
  if (!all || all.length === 0) return undefined;
  const at = (name: string | null) => record.policies.findIndex((p) => p.name === name);
  const index = [at(policy.name), at(record.verdict.policy), 0].find((i) => i >= 0) ?? 0;
  const recorded: RecordedPolicyFacts | undefined = all[index];
  if (!recorded) return undefined;
  const facts = factsFromRecord(recorded);
  return hasLoadSource(policy) ? facts : { ...facts, need: staticNeed(policy) };
}

/**
 * Runs one recorded review through the webhook's interpretation, judgement and
 * resolution (admission/decide.ts) with the recorded facts, under the given policies.
 * Pure: the same record and policies always give the same answer. Throws an Error for a
 * recorded request that does not parse.
 */
export function replayRecord(record: ReviewRecord, with_: ReplayPolicies): Replayed {
  if (record.facts.decidedBy === 'deadline') return { type: 'not-replayable', reason: 'decided by the deadline fallback' };
  const req = parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: record.request });
  const match = with_.matcher.match(req.userInfo);
  const counted = record.verdict.growth && record.verdict.episode === 'recorded';
  if ('skip' in match) {
    // No policy names the agent any more: allowed at once, as the webhook's fast path.
    const episode = counted ? episodeOf(record, record.verdict.to, record.verdict.need, record.verdict.measured, record.verdict.fallback) : undefined;
    return { type: 'decided', verdict: { decision: 'allowed', policy: null, limit: null, code: null, message: '' }, episode };
  }
  const view = new RecordedView({ workloads: record.facts.workloads, nodes: record.facts.nodes ?? undefined });
  const interpretation = interpretRequest(req, { view, scaleResources: with_.scaleResources, customKinds: with_.customKinds });
  if (interpretation.type !== 'change') {
    const message = interpretation.type === 'unknown-kind' ? `replica-guard does not understand ${interpretation.resource}; allowed without a check` : '';
    return { type: 'decided', verdict: { decision: 'allowed', policy: null, limit: null, code: null, message }, episode: undefined };
  }
  const missing: DecisionFacts = {
    need: { kind: 'unavailable', reason: 'the recording holds no facts for this policy' },
    family: undefined,
    clonedMember: () => undefined,
    rateUsed: undefined,
    lossesWithin: () => 0,
  };
  const decided = decide(
    'validate',
    interpretation.change,
    match.policies,
    match.agent,
    (policy) => recordedFactsFor(record, policy) ?? missing,
    record.facts.stale ?? undefined,
  );
  const lead = decided.lead;
  let episode: RiskEpisode | undefined;
  if (counted && lead) {
    const admitted = decided.decision.kind === 'denied' ? lead.from : lead.to;
    episode = episodeOf(record, admitted, lead.needUsed, lead.need.kind !== 'unmeasured', lead.fallback);
  }
  return { type: 'decided', verdict: verdictOfDecision(decided.decision), episode };
}

function episodeOf(record: ReviewRecord, admitted: number, need: number | null, measured: boolean, fallback: boolean): RiskEpisode {
  return { from: record.verdict.from, requested: record.verdict.requested, admitted, need, measured, fallback };
}

/** The recorded episode, when the review was one counted once. */
export function recordedEpisode(record: ReviewRecord): RiskEpisode | undefined {
  const v = record.verdict;
  if (!v.growth || v.episode !== 'recorded') return undefined;
  return { from: v.from, requested: v.requested, admitted: v.admitted, need: v.need, measured: v.measured, fallback: v.fallback };
}

/**
 * How two verdicts compare: `same` to the letter, `reworded` when only the message differs
 * (another allowance in the same denial), `changed` when the decision, the deciding
 * policy, the limit or the code differs.
 */
export function compareVerdicts(a: ComparedVerdict, b: ComparedVerdict): 'same' | 'reworded' | 'changed' {
  if (a.decision !== b.decision || a.policy !== b.policy || a.limit !== b.limit || a.code !== b.code) return 'changed';
  return a.message === b.message ? 'same' : 'reworded';
}
