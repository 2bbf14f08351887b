import { InMemoryClusterView } from '../cluster/in-memory-view.ts';
import { judge } from '../core/judge.ts';
import { resolve } from '../core/resolve.ts';
import { staticNeed } from '../core/static-need.ts';
import type { NeedFact, Policy } from '../core/types.ts';
import { compileAgentMatcher } from '../policy/agent-matcher.ts';
import type { CaseFacts } from '../policy/policy-cases.ts';
import { interpretRequest } from './interpret.ts';
import { placeholderNodes } from './node-eligibility.ts';
import { parseAdmissionReview } from './review.ts';
import { decisionFor, mutatingCallDecides, type Webhook } from './verdict.ts';
import { builtInKind, surgeOf } from './workload-kinds.ts';

/** What a review came to under stated facts. */
export interface CaseOutcome {
  readonly allowed: boolean;
  /** The count a patch sets, when the mutating webhook patched. */
  readonly patched?: number | undefined;
  /** The binding limit, as the audit annotation names it. */
  readonly limit?: string | undefined;
  /** The denial message, or the warnings, or why the request was not judged. */
  readonly message: string;
}

/**
 * Decides a review offline, with the facts a cluster would supply stated instead:
 * the same interpretation, judgement, resolution and decision as the webhook, without
 * a server, a view or a ledger. Throws a GuardError for a review that does not parse.
 */
export function evaluateCase(review: unknown, webhook: Webhook, policies: readonly Policy[], facts: CaseFacts): CaseOutcome {
  const req = parseAdmissionReview(review);
  const match = compileAgentMatcher(policies).match(req.userInfo);
  if ('skip' in match) return { allowed: true, message: match.skip };

  const view = new InMemoryClusterView(placeholderNodes(facts.nodes ?? 3));
  const parentKind = builtInKind(req.resource.group, req.resource.resource);
  if (req.subResource === 'scale' && facts.parent !== 'unknown' && parentKind) {
    const ref = { group: parentKind.group, kind: parentKind.kind, namespace: req.namespace, name: req.name };
    view.observe(ref, {
      ref,
      count: { steady: 0, extra: surgeOf(facts.parent?.maxSurge, 0) },
      serviceAccounts: [],
      fingerprints: [],
    });
  }
  const interpretation = interpretRequest(req, { view, scaleResources: [] });
  if (interpretation.type === 'not-counted') return { allowed: true, message: interpretation.reason };
  if (interpretation.type === 'unknown-kind') {
    return { allowed: true, message: `replica-guard does not understand ${interpretation.resource}` };
  }
  if (webhook === 'mutate' && !mutatingCallDecides(match.policies)) {
    return { allowed: true, message: 'no policy of the agent is in clamp mode: the mutating webhook allows without a decision' };
  }
  const change = interpretation.change;
  const judgements = match.policies.map((policy) => {
    const clone = facts.clone === true && change.createsWorkload && policy.clones?.allowed !== true;
    return judge(
      change,
      policy,
      {
        need: clone ? { kind: 'measured', value: 0, source: 'clone' } : needOf(facts, policy),
        family: facts.family ?? { workloads: 0, potential: 0 },
        rateUsed: () => facts.rateUsed ?? 0,
        underPressure: (facts.losses ?? 0) > 0,
        clonedMember: clone ? 'a member of the family' : undefined,
      },
      match.agent,
    );
  });
  const decision = decisionFor(webhook, change, resolve(change, judgements));
  const patchedTo = decision.kind === 'patched' ? decision.patch[0]?.value : undefined;
  return {
    allowed: decision.kind !== 'denied',
    patched: typeof patchedTo === 'number' ? patchedTo : undefined,
    limit: decision.auditAnnotations.limit,
    message: decision.kind === 'denied' ? decision.message : decision.warnings.join('\n'),
  };
}

function needOf(facts: CaseFacts, policy: Policy): NeedFact {
  const need = facts.need;
  if (need === undefined) return staticNeed(policy);
  if (need === 'unmeasured') return { kind: 'unmeasured' };
  if (typeof need === 'number') return { kind: 'measured', value: need, source: 'case' };
  return { kind: 'unavailable', reason: need.unavailable };
}
