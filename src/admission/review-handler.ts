import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { ClusterView, ObservingClusterView, WorkloadSnapshot } from '../cluster/cluster-view.ts';
import type { AllowanceLeases, LeaseRoom, LeaseSpend } from '../cluster/allowance-leases.ts';
import type { Ledger, LedgerStep } from '../cluster/ledger.ts';
import type { LedgerHousekeeper } from '../cluster/ledger-housekeeper.ts';
import { housekept } from '../cluster/ledger-housekeeping.ts';
import { type Episode, episodeKey, workloadKeyOf } from '../core/episode.ts';
import { countUnderPolicy, potentialOf } from '../core/instances.ts';
import {
  compactId,
  expire,
  type FamilyObservation,
  holdRequested,
  leasedInstances,
  lossesWithin,
  rateUsed,
  recordEpisodeOnce,
  requestedFor,
  reservedInstances,
} from '../core/ledger-state.ts';
import type { Judgement } from '../core/judge.ts';
import { justificationFact, justificationHash } from '../core/justification.ts';
import type { Resolution } from '../core/resolve.ts';
import { policiesUnderSwitches, resolveUnderFreeze } from '../core/switch-rules.ts';
import { describeWorkload } from '../core/family.ts';
import type { ApplicableSwitches } from '../core/switches.ts';
import { type EpisodeSums, episodeSums, needClassOf, riskDefaults } from '../core/risk.ts';
import type { AgentIdentity, FamilyFact, Policy, WorkloadChange, WorkloadRef } from '../core/types.ts';
import { GuardError } from '../errors.ts';
import type { LoadSource } from '../load/load-source.ts';
import type { AgentMatcher } from '../policy/agent-matcher.ts';
import type { GuardMetrics } from '../telemetry/metrics.ts';
import type { RiskMetrics } from '../telemetry/risk-metrics.ts';
import { consulting, type RecordedPolicyFacts } from '../record/consulted-facts.ts';
import { type ViewLookups, watchingLookups } from '../record/recorded-view.ts';
import type { Recorder } from '../record/recorder.ts';
import { decide, type DecisionFacts, leadJudgement } from './decide.ts';
import { allowed, type Decision, denied, withAuditAnnotations, withWarnings } from './decision.ts';
import { type Interpretation, interpretRequest, type ScaleResource } from './interpret.ts';
import { type AdmissionReviewResponse, admissionResponse } from './response.ts';
import type { SwitchGate } from './safety-switches.ts';
import { decisionEvent } from './decision-events.ts';
import { applyEpisodeRecord, type EpisodeRecord, type GrowthSpend, type RecordOutcome } from './episode-record.ts';
import { leaseRoom } from './lease-room.ts';
import type { EventSink } from '../cluster/event-recorder.ts';
import { type AdmissionRequest, parseAdmissionReview, uidOf } from './review.ts';
import { parseTimeoutParam } from './timeout-param.ts';
import { decisionFor, mutatingCallDecides, type Webhook } from './verdict.ts';
import type { WorkloadKind } from './workload-kinds.ts';

/** The policy set that decides now, with its matcher compiled. */
export interface ActivePolicies {
  readonly policies: readonly Policy[];
  readonly matcher: AgentMatcher;
}

/** Everything a review needs, passed in: nothing here reads the environment or a global. */
export interface ReviewHandlerDeps {
  /** The current policy set; undefined until a valid one is loaded. */
  readonly policies: () => ActivePolicies | undefined;
  readonly view: ClusterView | ObservingClusterView;
  readonly loadSource: LoadSource;
  readonly ledger: Ledger;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: GuardMetrics;
  readonly scaleResources: readonly ScaleResource[];
  /** Custom resources counted by configured paths (a RayCluster, a KEDA ScaledObject...). */
  readonly customKinds?: readonly WorkloadKind[] | undefined;
  /** The guard answers this long before the apiserver's timeout. */
  readonly deadlineMarginMs: number;
  /** The timeout assumed when the apiserver sends none (its default is 10 s). */
  readonly defaultTimeoutMs: number;
  /** Facts from a view older than this are unknown (the policy's onUnavailable decides). */
  readonly maxStalenessMs: number;
  /** Told of every agent write the validating webhook admits (not dry-run): the loss recorder's cross-check. */
  readonly onAdmitted?: ((change: WorkloadChange) => void) | undefined;
  /**
   * The risk counters and gauges, and the tolerance episodes are counted with. Absent:
   * no risk metrics in this process, but the ledger's episode buckets are still kept
   * (with the default tolerance), so that other replicas' gauges stay complete.
   */
  readonly risk?: RiskMetrics | undefined;
  /** Where the validating webhook records each agent review it decides (not dry-run); absent: no recording. */
  readonly recorder?: Recorder | undefined;
  /** Where Events for denials and clamps go (sent off the request path); absent: none. */
  readonly events?: EventSink | undefined;
  /** The safety switches (freeze, break-glass, exemptions); absent: none apply. */
  readonly switches?: SwitchGate | undefined;
  /**
   * Answer a denial before its episode is in the ledger, and record it right after (the
   * shared ledger: a denial then costs no API call before its answer). Its audit line and
   * recording follow the record. Default false: recorded in the decision's own step.
   */
  readonly recordDenialsAfterAnswer?: boolean | undefined;
  /** Told of every agent a decision read the ledger for: it writes the housekeeping decisions only read. */
  readonly housekeeper?: Pick<LedgerHousekeeper, 'touched'> | undefined;
  /**
   * This replica's allowance leases (cluster mode): admitted growth within the lease is
   * answered without a ledger call and written behind. Absent: every growth is written
   * before its answer.
   */
  readonly leases?: Pick<AllowanceLeases, 'decide'> | undefined;
  /**
   * Runs the audit line and the recording of a decision once its answer is sent (default
   * `setImmediate`, which runs after the answer's write in the same turn of the event loop).
   */
  readonly afterAnswer?: ((work: () => void) => void) | undefined;
}

/** An HTTP answer: the status and the JSON body. */
export interface ReviewResult {
  readonly status: number;
  readonly body: AdmissionReviewResponse | { readonly code: string; readonly message: string; readonly uid?: string };
}

/** Handles one AdmissionReview for one webhook. */
export type ReviewHandler = (webhook: Webhook, body: unknown, timeoutParam: string | undefined) => Promise<ReviewResult>;

const KNOWN_KINDS = new Set([
  'Deployment',
  'ReplicaSet',
  'StatefulSet',
  'ReplicationController',
  'Job',
  'CronJob',
  'DaemonSet',
  'Pod',
  'HorizontalPodAutoscaler',
  'Scale',
]);

/** Builds the review handler: parse, identify, interpret, gather facts, decide, record, answer. */
export function createReviewHandler(deps: ReviewHandlerDeps): ReviewHandler {
  const { metrics, clock, logger } = deps;
  const tolerance = deps.risk?.settings.tolerance ?? riskDefaults.tolerance;
  // The apiserver sends the same timeout on every call of a webhook: parse it once.
  let lastTimeout: { readonly param: string | undefined; readonly ms: number | undefined } | undefined;
  const timeoutOf = (param: string | undefined): number | undefined => {
    if (lastTimeout === undefined || lastTimeout.param !== param) lastTimeout = { param, ms: parseTimeoutParam(param) };
    return lastTimeout.ms;
  };

  const count = (webhook: Webhook, verdict: string, req: AdmissionRequest | undefined) =>
    metrics.requests.inc({
      webhook,
      verdict,
      kind: req ? kindLabel(req.kind.kind) : 'unknown',
      operation: req?.operation ?? 'unknown',
    });

  const schedule = deps.afterAnswer ?? setImmediate;
  const afterAnswer = (work: () => void): void =>
    schedule(() => {
      try {
        work();
      } catch (err) {
        logger.error({ err }, 'could not write the audit line or the recording of a decision');
      }
    });

  const fail = (webhook: Webhook, err: GuardError, uid: string | undefined, req?: AdmissionRequest): ReviewResult => {
    metrics.errors.inc({ code: err.code });
    count(webhook, 'error', req);
    return { status: err.status, body: { code: err.code, message: err.message, ...(uid ? { uid } : {}) } };
  };

  return async function handleReview(webhook, body, timeoutParam) {
    const started = clock.monotonicMs();
    let req: AdmissionRequest;
    try {
      req = parseAdmissionReview(body);
    } catch (err) {
      if (err instanceof GuardError) return fail(webhook, err, uidOf(body));
      throw err;
    }

    const active = deps.policies();
    if (!active) {
      return fail(webhook, new GuardError('RG_ERR_NOT_READY', 'no valid policy set is loaded yet'), req.uid, req);
    }
    const match = active.matcher.match(req.userInfo);
    if (deps.switches?.handles(req)) {
      // ServiceAccounts and Namespaces carry the freeze annotations: decided for everyone.
      const decision = await deps.switches.review(webhook, req, 'skip' in match ? undefined : match.agent);
      count(webhook, verdictLabel(decision), req);
      return { status: 200, body: admissionResponse(req.uid, decision) };
    }
    if ('skip' in match) {
      count(webhook, 'allowed', req);
      metrics.duration.observe({ webhook, path: 'fast' }, (clock.monotonicMs() - started) / 1000);
      return { status: 200, body: admissionResponse(req.uid, allowed()) };
    }
    // Deciding the mutating call too when it cannot clamp would double the guard's work on
    // every agent write for nothing.
    const unclamped = webhook === 'mutate' && !mutatingCallDecides(match.policies);
    try {
      const decision = await decideForAgent(webhook, req, match.agent, match.policies, timeoutParam, unclamped);
      const event = deps.events && decisionEvent(webhook, req, match.agent, decision);
      if (event) deps.events?.record(event);
      count(webhook, verdictLabel(decision), req);
      metrics.duration.observe({ webhook, path: unclamped ? 'unclamped' : 'agent' }, (clock.monotonicMs() - started) / 1000);
      return { status: 200, body: admissionResponse(req.uid, decision) };
    } catch (err) {
      if (err instanceof GuardError && err.status !== 500) return fail(webhook, err, req.uid, req);
      logger.error({ err, uid: req.uid, webhook }, 'internal error while deciding');
      const wrapped = new GuardError('RG_ERR_INTERNAL', 'internal error while deciding; see the guard logs', { cause: err });
      return fail(webhook, wrapped, req.uid, req);
    }
  };

  async function decideForAgent(
    webhook: Webhook,
    req: AdmissionRequest,
    agent: AgentIdentity,
    policies: readonly Policy[],
    timeoutParam: string | undefined,
    unclamped: boolean,
  ): Promise<Decision> {
    // A recording keeps what the interpretation read from the view, for a replay to read.
    const watched = deps.recorder && webhook === 'validate' && !req.dryRun ? watchingLookups(deps.view) : undefined;
    const interpretation = interpretRequest(req, {
      view: watched?.view ?? deps.view,
      scaleResources: deps.scaleResources,
      customKinds: deps.customKinds,
    });
    if (interpretation.type !== 'change') return uncounted(webhook, req, agent, interpretation);
    // Read all the same, so that a malformed object is refused by both calls.
    if (unclamped) return allowed();
    const lookups = watched?.lookups();

    const timeoutMs = timeoutOf(timeoutParam) ?? deps.defaultTimeoutMs;
    const budgetMs = Math.max(0, timeoutMs - deps.deadlineMarginMs);
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolveDeadline) => {
      timer = setTimeout(() => {
        controller.abort();
        resolveDeadline('deadline');
      }, budgetMs);
    });
    try {
      const outcome = await Promise.race([
        settle(webhook, req, agent, policies, interpretation, controller.signal, lookups),
        deadline,
      ]);
      if (outcome === 'deadline') return await onDeadline(webhook, req, agent, policies, interpretation, budgetMs, lookups);
      return outcome;
    } catch (err) {
      if (err instanceof GuardError && err.code === 'RG_ERR_LEDGER_CONFLICT') return ledgerConflict(webhook, req, agent, err);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The need of every policy: the one asynchronous fact, looked up before the ledger step. */
  async function needs(change: WorkloadChange, agent: AgentIdentity, policies: readonly Policy[], signal: AbortSignal) {
    // An HPA's need is its target's: query the load of the workload it scales.
    const target = change.scaleTarget;
    const needRef: WorkloadRef = target ? { ...target, namespace: change.ref.namespace } : change.ref;
    const targetNow = target ? deps.view.workload(target.group, target.kind, change.ref.namespace, target.name) : undefined;
    const currentSteady = targetNow?.count.steady ?? change.before?.steady ?? 0;
    return Promise.all(policies.map((policy) => deps.loadSource.need({ ref: needRef, currentSteady, policy, agent }, signal)));
  }

  /**
   * Decides and records in one ledger transaction: the judgement reads the rate used, the
   * losses and the provenance from the same state the reservation is written to, so two
   * replicas deciding for the same agent never both spend the same allowance (on a
   * conflict the step runs again on the fresher state). Dry-run requests only read.
   */
  async function settle(
    webhook: Webhook,
    req: AdmissionRequest,
    agent: AgentIdentity,
    policies: readonly Policy[],
    interpretation: Extract<Interpretation, { type: 'change' }>,
    signal: AbortSignal,
    lookups: ViewLookups | undefined,
  ): Promise<Decision> {
    const change = interpretation.change;
    const staleness = deps.view.staleness(clock.monotonicMs());
    const stale =
      staleness === undefined
        ? 'the cluster view has not synced yet'
        : staleness > deps.maxStalenessMs
          ? `the cluster view is ${Math.round(staleness / 1000)} s old`
          : undefined;
    const needFacts = await needs(change, agent, policies, signal);
    const switched = deps.switches?.applicable(agent, change.ref) ?? {};
    const judgedPolicies = policiesUnderSwitches(policies, switched);
    const now = clock.now();
    const limits = deps.ledger.limits;
    const writes = !req.dryRun;
    const recording = lookups !== undefined;
    const asksClone = change.createsWorkload && change.pods !== undefined;
    const confirmAtOnce = 'observe' in deps.view;
    // Hashed once per request: every ledger function takes the compact form as it is.
    const workloadKey = compactId(workloadKeyOf(change));
    let keyMemo: { readonly from: number; readonly to: number; readonly key: string } | undefined;
    const keyOf = (from: number, to: number): string => {
      if (keyMemo?.from !== from || keyMemo.to !== to) keyMemo = { from, to, key: compactId(episodeKey(agent.username, change, from, to)) };
      return keyMemo.key;
    };

    const step: LedgerStep<Settled> = (before) => {
      // Past the deadline the fallback has answered: this step must not spend anything.
      const spend = writes && !signal.aborted;
      let state = housekept(before, agent, deps.view, now, limits, change.ref);
      // What housekeeping found is read here but written only with a decision's own
      // record: a request that records nothing costs no write (the housekeeper writes it).
      // Growth admitted (by any replica) that the view does not show yet still counts, and
      // so do the allowance leases of other replicas (this replica's own is not in `before`).
      const pending = reservedInstances(state, now) - reservedInstances(state, now, [workloadKey]) + leasedInstances(state, now);
      const justification = justificationFact(change, state.justification?.hash);
      const families: (FamilyFact | undefined)[] = [];
      const viewPotentials: (number | undefined)[] = [];
      const consulted: ReturnType<typeof consulting>[] = [];
      const read = state;
      const decided = decide(
        webhook,
        change,
        judgedPolicies,
        agent,
        (policy, i) => {
          const ignore = policy.clones?.ignoreImages ?? [];
          const seen = deps.view.family({ agent, provenance: read.provenance, ignoreImages: ignore, excluding: change.ref });
          const family = { workloads: seen.workloads, potential: seen.potential + pending };
          families[i] = stale ? undefined : family;
          viewPotentials[i] = stale ? undefined : seen.potential;
          const facts: DecisionFacts = {
            need: needFacts[i] ?? { kind: 'unmeasured' },
            family,
            clonedMember: () => {
              const member = seen.clonedMember(change.pods?.fingerprints ?? []);
              return member && describeWorkload(member);
            },
            rateUsed: (windowMs) => rateUsed(read, windowMs, now),
            lossesWithin: (windowMs) => lossesWithin(read, windowMs, now),
            justification,
          };
          if (!recording) return facts;
          const c = consulting(facts, asksClone);
          consulted[i] = c;
          return c.facts;
        },
        stale,
      );
      const recordedFacts = recording ? consulted.map((c) => c.recorded()) : undefined;
      const { judgements } = decided;
      // A freeze turns any growth into a denial, whatever the policies made of it.
      const resolution = resolveUnderFreeze(decided.resolution, judgements, switched, deps.switches?.where ?? '');
      const switchedDecision = resolution === decided.resolution ? decided.decision : decisionFor(webhook, change, resolution);
      const annotated = switchAnnotated(switchedDecision, resolution, switched);
      // The reasoning is kept in the apiserver's audit log with the decision it came with.
      const decision = justification?.text ? withAuditAnnotations(annotated, { justification: justification.text.slice(0, 1024) }) : annotated;
      const lead = resolution === decided.resolution ? decided.lead : leadJudgement(judgements, resolution);
      let held: number | undefined;
      let isNew: boolean | undefined;
      let charged = 0;
      let record: EpisodeRecord | undefined;
      let sums: EpisodeSums | undefined;
      if (spend && lead?.growth) {
        if (webhook === 'mutate' && resolution.type === 'clamp') {
          state = holdRequested(state, keyOf(lead.from, resolution.to), lead.to, now, limits);
        }
        if (webhook === 'validate') {
          const key = keyOf(lead.from, lead.to);
          held = requestedFor(state, key, now, limits);
          // The episode's risk sums go into the ledger in the same write as its key, and only
          // when the key is new: a retry loop can never inflate E, O or AOC.
          const denied = decision.kind === 'denied';
          const facts = episodeFacts(lead, held, denied);
          const sumsFor = (h: number | undefined) => episodeSums(episodeFacts(lead, h, denied), { tolerance });
          sums = sumsFor(held);
          const family = families[judgements.indexOf(lead)];
          const measured = needClassOf(facts) === 'measured';
          const observed: FamilyObservation | undefined = family && {
            instances: family.potential + ownPotential(change, lead.policy, decision.kind === 'denied'),
            workload: measured ? workloadKey : undefined,
            need: measured ? (facts.need ?? undefined) : undefined,
          };
          const growth: GrowthSpend | undefined =
            decision.kind === 'denied'
              ? undefined
              : {
                  reservation: { key, workload: workloadKey, steady: lead.to, addedInstances: addedPotential(change, lead.policy) },
                  uid: change.ref.uid,
                  // The next growth must bring a reasoning of its own.
                  justificationHash: justification?.text ? justificationHash(justification.text) : undefined,
                  confirmAtOnce,
                };
          record = { key, sumsFor, observed, growth, at: now };
          // A denial spends no allowance: its record need not hold up the answer.
          if (growth !== undefined || deps.recordDenialsAfterAnswer !== true) {
            const applied = applyEpisodeRecord(state, record, limits);
            state = applied.state;
            isNew = applied.isNew;
            charged = applied.charged;
          }
        }
      }
      // Admitted growth may take an allowance lease from the room its policies leave.
      const room =
        record?.growth === undefined
          ? undefined
          : leaseRoom(
              judgedPolicies.map((policy, i) => ({ policy, viewPotential: viewPotentials[i], ownPotential: ownPotential(change, policy, false) })),
            );
      return {
        result: { judgements, resolution, decision, lead, held, isNew, sums, recordedFacts, record, room, charged },
        next: spend && state !== read ? state : undefined,
      };
    };
    const { settled, written } = await decideOnLedger(agent, step);
    deps.housekeeper?.touched(agent);
    const { decision, lead } = settled;
    if (writes) deps.risk?.seen(agent.username);
    if (decision.auditAnnotations.switch !== undefined && webhook === 'validate' && lead?.growth) {
      deps.switches?.counted(switchNameOf(decision.auditAnnotations.switch), decision.kind);
    }

    const record = settled.record;
    if (record === undefined || settled.isNew !== undefined) {
      finish(settled.isNew === undefined || settled.sums === undefined ? undefined : { isNew: settled.isNew, charged: settled.charged, held: settled.held, sums: settled.sums });
      return decision;
    }
    // Answered now; the audit line and the recording follow the record, which says whether
    // the episode is new and what the mutating call held.
    (
      written ??
      deps.ledger.transact(agent.username, (state) => {
        const out = applyEpisodeRecord(expire(state, now, limits), record, limits);
        return { result: { isNew: out.isNew, charged: out.charged, held: out.held, sums: out.sums }, next: out.isNew ? out.state : undefined };
      })
    ).then(finish, (err: unknown) => {
      logger.error({ err, uid: req.uid, agent: agent.username }, 'could not record the episode of a denial');
      finish(undefined);
    });
    return decision;

    /** Counts the episode once it is known whether it is new, then audits and records the review. */
    function finish(outcome: RecordOutcome | undefined): void {
      let requested = lead?.to ?? change.after?.steady ?? 0;
      let episode: 'recorded' | 'duplicate' | undefined;
      const held = outcome ? outcome.held : settled.held;
      if (webhook === 'validate' && writes && lead?.growth && outcome !== undefined) {
        if (held !== undefined) requested = held;
        const verdict = episodeVerdictOf(decision, held, lead);
        if (outcome.isNew) {
          const key = episodeKey(agent.username, change, lead.from, lead.to);
          const admitted = verdict === 'denied' ? lead.from : lead.to;
          deps.ledger.keepRecord(episodeOf(key, agent, interpretation, lead, requested, admitted, verdict, now));
          // Counted after the write committed, from the very sums it wrote.
          deps.risk?.countEpisode(agent.username, outcome.sums, requested - admitted);
        }
        episode = outcome.isNew ? 'recorded' : 'duplicate';
      }
      if (webhook === 'validate' && writes && decision.kind !== 'denied') {
        // Before the answer: the next decision must see what this one admitted.
        observe(change);
        deps.onAdmitted?.(change);
      }
      // Nothing to write at logLevel warn without a recorder: no work queued per review.
      if (recording || logger.isLevelEnabled('info')) afterAnswer(() => report(episode, requested, held));
    }

    /** The audit line and the recording: written after the answer, which never waits on stdout. */
    function report(episode: 'recorded' | 'duplicate' | undefined, requested: number, held: number | undefined): void {
      audit(webhook, req, agent, interpretation, decision, {
        from: lead?.from ?? change.before?.steady ?? 0,
        requested,
        lead,
        episode,
      });
      // Past the deadline the fallback answered, and recorded that answer instead.
      if (recording && deps.recorder && !signal.aborted) {
        deps.recorder.record({
          at: now,
          request: req,
          agent: agent.username,
          policies,
          decidedBy: 'policies',
          lookups,
          kind: interpretation.kind,
          staleness,
          stale,
          facts: settled.recordedFacts,
          decision,
          lead,
          from: lead?.from ?? change.before?.steady ?? 0,
          requested,
          to: lead?.to ?? change.after?.steady ?? 0,
          episodeVerdict: lead?.growth === true ? episodeVerdictOf(decision, held, lead) : undefined,
          episode,
        });
      }
    }
  }

  /**
   * Runs the decision step: from this replica's allowance lease when it has one that covers
   * the growth (answered without a call; written behind, `written` says when), else through
   * the ledger. A decision that writes nothing is answered from the lease's state too. Every
   * call, mutating and dry-run ones included, decides without this replica's own lease, as
   * the validating call that spends it does.
   */
  async function decideOnLedger(
    agent: AgentIdentity,
    step: LedgerStep<Settled>,
  ): Promise<{ readonly settled: Settled; readonly written?: Promise<RecordOutcome | undefined> }> {
    const leases = deps.leases;
    if (leases === undefined) return { settled: await deps.ledger.transact(agent.username, step) };
    const { result, written } = await leases.decide(agent.username, step, leaseSpendOf);
    return { settled: written === undefined ? result : { ...result, isNew: undefined }, written };
  }

  function ledgerConflict(webhook: Webhook, req: AdmissionRequest, agent: AgentIdentity, err: GuardError): Decision {
    metrics.errors.inc({ code: err.code });
    logger.warn({ err, uid: req.uid, agent: agent.username }, 'ledger compare-and-swap retries ran out');
    if (webhook === 'mutate') return withWarnings(allowed(), [`${err.code}: ${err.message}`]);
    return withAuditAnnotations(
      denied(`${err.code}: replica-guard could not record this growth (${err.message}); it is denied. Retry shortly.`, [
        { reason: err.code, message: err.message },
      ]),
      { verdict: 'denied', limit: 'ledger', code: err.code },
    );
  }

  async function onDeadline(
    webhook: Webhook,
    req: AdmissionRequest,
    agent: AgentIdentity,
    policies: readonly Policy[],
    interpretation: Extract<Interpretation, { type: 'change' }>,
    budgetMs: number,
    lookups: ViewLookups | undefined,
  ): Promise<Decision> {
    metrics.errors.inc({ code: 'RG_ERR_DEADLINE' });
    const change = interpretation.change;
    // The switches hold here too: a freeze enforces whatever the modes, break-glass relaxes them.
    const switched = deps.switches?.applicable(agent, change.ref) ?? {};
    const enforcing = switched.freeze ? policies : policiesUnderSwitches(policies, switched).filter((p) => p.mode !== 'audit');
    const message = `RG_ERR_DEADLINE: replica-guard could not decide within ${budgetMs} ms`;
    let decision: Decision;
    if (webhook === 'validate' && enforcing.length > 0) {
      decision = withAuditAnnotations(
        denied(`${message}; growth is denied until it can (policy ${enforcing[0]?.name}). Retry shortly.`, [
          { reason: 'RG_ERR_DEADLINE', message },
        ]),
        { verdict: 'denied', limit: 'deadline', code: 'RG_ERR_DEADLINE' },
      );
    } else {
      decision = withAuditAnnotations(withWarnings(allowed(), [message]), { verdict: 'allowed', code: 'RG_ERR_DEADLINE' });
    }
    const from = change.before?.steady ?? 0;
    const to = change.after?.steady ?? 0;
    const grows = change.after !== null && (change.createsWorkload || to > from);
    const policy = enforcing[0] ?? policies[0];
    if (webhook === 'validate' && !req.dryRun && grows && policy) {
      // Recorded after the answer: the ledger may be what is slow, and the answer is due now.
      const key = episodeKey(agent.username, change, from, to);
      const fallbackEpisode: Episode = {
        ...baseEpisode(key, agent, interpretation, policy.name, from, to),
        admitted: decision.kind === 'denied' ? from : to,
        need: null,
        measured: true,
        fallback: true,
        verdict: decision.kind === 'denied' ? 'denied' : 'allowed',
        at: clock.now(),
      };
      // A fallback episode: counted under need="fallback", outside OR and AOC.
      const sums = episodeSums(fallbackEpisode, { tolerance });
      deps.risk?.seen(agent.username);
      deps.ledger
        .transact(agent.username, (state) => {
          const at = fallbackEpisode.at;
          const out = recordEpisodeOnce(expire(state, at, deps.ledger.limits), key, sums, at, deps.ledger.limits);
          return { result: out.isNew, next: out.isNew ? out.state : undefined };
        })
        .then((isNew) => {
          if (!isNew) return;
          deps.ledger.keepRecord(fallbackEpisode);
          deps.risk?.countEpisode(agent.username, sums, fallbackEpisode.requested - fallbackEpisode.admitted);
        })
        .catch((err: unknown) => logger.error({ err, uid: req.uid }, 'could not record the episode of a deadline fallback'));
    }
    audit(webhook, req, agent, interpretation, decision, {
      from,
      requested: to,
      lead: undefined,
      episode: undefined,
      code: 'RG_ERR_DEADLINE',
    });
    if (lookups !== undefined) {
      deps.recorder?.record({
        at: clock.now(),
        request: req,
        agent: agent.username,
        policies,
        decidedBy: 'deadline',
        lookups,
        kind: interpretation.kind,
        staleness: undefined,
        stale: undefined,
        facts: undefined,
        decision,
        lead: undefined,
        from,
        requested: to,
        to,
        episodeVerdict: grows ? (decision.kind === 'denied' ? 'denied' : 'allowed') : undefined,
        episode: undefined,
      });
    }
    return decision;
  }

  function uncounted(
    webhook: Webhook,
    req: AdmissionRequest,
    agent: AgentIdentity,
    interpretation: Exclude<Interpretation, { type: 'change' }>,
  ): Decision {
    if (interpretation.type === 'not-counted') return allowed();
    metrics.unknownKinds.inc({ resource: interpretation.resource });
    const decision = withWarnings(allowed(), [
      `replica-guard does not understand ${interpretation.resource}; allowed without a check`,
    ]);
    logger.warn(
      { audit: auditBase(webhook, req, agent), resource: interpretation.resource },
      'agent wrote a resource the guard does not understand',
    );
    return decision;
  }

  function observe(change: WorkloadChange): void {
    const view = deps.view;
    if (!('observe' in view)) return;
    if (change.after === null) {
      view.observe(change.ref, null);
      return;
    }
    const previous = view.workload(change.ref.group, change.ref.kind, change.ref.namespace, change.ref.name);
    const snapshot: WorkloadSnapshot = {
      ref: { ...change.ref, uid: change.ref.uid ?? previous?.ref.uid },
      count: change.after,
      serviceAccounts: change.pods?.serviceAccounts ?? previous?.serviceAccounts ?? [],
      fingerprints: change.pods?.fingerprints ?? previous?.fingerprints ?? [],
      scaleTarget: change.scaleTarget ?? previous?.scaleTarget,
      justification: change.justification?.from === 'object' ? change.justification.text : previous?.justification,
    };
    view.observe(change.ref, snapshot);
  }

  function auditBase(webhook: Webhook, req: AdmissionRequest, agent: AgentIdentity) {
    return {
      time: clock.now().toISOString(),
      uid: req.uid,
      webhook,
      agent: agent.username,
      operation: req.operation,
      kind: req.kind.kind,
      namespace: req.namespace,
      name: req.name,
      dryRun: req.dryRun,
    };
  }

  function audit(
    webhook: Webhook,
    req: AdmissionRequest,
    agent: AgentIdentity,
    interpretation: Extract<Interpretation, { type: 'change' }>,
    decision: Decision,
    facts: {
      from: number;
      requested: number;
      lead: Judgement | undefined;
      episode: 'recorded' | 'duplicate' | undefined;
      code?: string;
    },
  ): void {
    // Built only when written: a third of an agent decision's cost at logLevel info.
    if (!logger.isLevelEnabled('info')) return;
    const lead = facts.lead;
    logger.info(
      {
        audit: {
          ...auditBase(webhook, req, agent),
          from: facts.from,
          to: facts.requested,
          need: lead?.needUsed ?? null,
          allowance: lead?.allowance ?? null,
          verdict: decision.kind === 'patched' ? 'clamped' : decision.kind,
          policy: decision.auditAnnotations.policy ?? lead?.policy.name,
          limit: decision.auditAnnotations.limit,
          fallback: lead?.fallback ?? facts.code !== undefined,
          episode: facts.episode,
          code: facts.code,
          justification: interpretation.justification,
          switch: decision.auditAnnotations.switch,
        },
      },
      'decision',
    );
  }
}

/**
 * Names the switch that set the outcome in the audit annotations (and so the audit line):
 * the freeze that denied, or the break-glass or exemption that turned the policies to audit.
 */
function switchAnnotated(decision: Decision, resolution: Resolution, switched: ApplicableSwitches): Decision {
  if (resolution.type === 'deny' && resolution.violations[0]?.limit === 'freeze' && switched.freeze) {
    return withAuditAnnotations(decision, { switch: switched.freeze.key });
  }
  const relaxed = switched.breakGlass ?? switched.exemption;
  if (relaxed === undefined || resolution.type === 'deny') return decision;
  return withAuditAnnotations(decision, { switch: relaxed.key });
}

function switchNameOf(key: string): 'freeze' | 'break-glass' | 'exemption' {
  return key === 'break-glass' ? 'break-glass' : key.startsWith('freeze.') ? 'freeze' : 'exemption';
}

/** What one ledger step decided and found. */
interface Settled {
  readonly judgements: readonly Judgement[];
  readonly resolution: Resolution;
  readonly decision: Decision;
  readonly lead: Judgement | undefined;
  /** The agent's requested count the mutating call held under this key, if any. */
  readonly held: number | undefined;
  /** Whether the validating call recorded the episode key for the first time. */
  readonly isNew: boolean | undefined;
  /** The episode's risk sums, as written to the ledger's buckets (validating call only). */
  readonly sums: EpisodeSums | undefined;
  /** What each policy's judgement consulted, when the review is recorded. */
  readonly recordedFacts: readonly RecordedPolicyFacts[] | undefined;
  /** What the validating call records; written by the step unless `isNew` is undefined (then after the answer). */
  readonly record: EpisodeRecord | undefined;
  /** The room admitted growth leaves for an allowance lease (undefined: nothing admitted). */
  readonly room: LeaseRoom | undefined;
  /** Instances the decision's reservation newly charged (what it spends from a lease). */
  readonly charged: number;
}

/** The episode's verdict: clamped when the mutating call held a higher requested count. */
function episodeVerdictOf(decision: Decision, held: number | undefined, lead: Judgement | undefined): 'allowed' | 'denied' | 'clamped' {
  if (decision.kind === 'denied') return 'denied';
  return held !== undefined && lead !== undefined && held > lead.to ? 'clamped' : 'allowed';
}

/** The numbers of an episode the risk math needs, as the validating call knows them. */
function episodeFacts(lead: Judgement, held: number | undefined, denied: boolean) {
  return {
    from: lead.from,
    // The agent's own count: held by the mutating call when it clamped, else what reached us.
    requested: held ?? lead.to,
    admitted: denied ? lead.from : lead.to,
    need: lead.needUsed,
    measured: lead.need.kind !== 'unmeasured',
    fallback: lead.fallback,
  };
}

/**
 * What a decision may spend from an allowance lease: admitted growth, charged by the
 * instances its reservation newly adds (none for growth reserved already). Growth that carries a justification is not: its freshness is shared, so the
 * ledger must see it before the next growth is judged.
 */
function leaseSpendOf(settled: Settled): LeaseSpend | undefined {
  const { record, room } = settled;
  const growth = record?.growth;
  if (record === undefined || growth === undefined || room === undefined || growth.justificationHash !== undefined) return undefined;
  return { record, spent: settled.charged, room };
}

/** Potential instances of the judged workload after the decision (before it, when denied). */
function ownPotential(change: WorkloadChange, policy: Policy, denied: boolean): number {
  const count = denied ? change.before : change.after;
  return count ? potentialOf(countUnderPolicy(count, policy.limits)) : 0;
}

/** Potential instances the change adds, as the deciding policy counts them (CronJob overlap). */
function addedPotential(change: WorkloadChange, policy: Policy): number {
  const before = change.before ? potentialOf(countUnderPolicy(change.before, policy.limits)) : 0;
  const after = change.after ? potentialOf(countUnderPolicy(change.after, policy.limits)) : 0;
  return Math.max(0, after - before);
}

function baseEpisode(
  key: string,
  agent: AgentIdentity,
  interpretation: Extract<Interpretation, { type: 'change' }>,
  policy: string,
  from: number,
  requested: number,
) {
  const ref = interpretation.change.ref;
  return {
    key,
    agent: agent.username,
    policy,
    kind: ref.kind,
    namespace: ref.namespace,
    name: ref.name,
    from,
    requested,
  };
}

function episodeOf(
  key: string,
  agent: AgentIdentity,
  interpretation: Extract<Interpretation, { type: 'change' }>,
  lead: Judgement,
  requested: number,
  admitted: number,
  verdict: Episode['verdict'],
  at: Date,
): Episode {
  return {
    ...baseEpisode(key, agent, interpretation, lead.policy.name, lead.from, requested),
    admitted,
    need: lead.needUsed,
    measured: lead.need.kind !== 'unmeasured',
    fallback: lead.fallback,
    verdict,
    at,
  };
}

function verdictLabel(decision: Decision): string {
  return decision.kind;
}

function kindLabel(kind: string): string {
  return KNOWN_KINDS.has(kind) ? kind : 'other';
}
