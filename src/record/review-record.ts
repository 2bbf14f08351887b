import type { Decision } from '../admission/decision.ts';
import type { AdmissionRequest } from '../admission/review.ts';
import type { Judgement } from '../core/judge.ts';
import type { Policy } from '../core/types.ts';
import type { RecordedPolicyFacts } from './consulted-facts.ts';
import { policyVersion } from './policy-version.ts';
import type { ViewLookups } from './recorded-view.ts';
import { sanitizeRequest } from './sanitize.ts';

/** The format of a recording line; a reader refuses any other. */
export const RECORDING_FORMAT = 'replica-guard.io/recording/v1';

/** How a review was decided: by the policies on gathered facts, or by the deadline's fallback. */
export type DecidedBy = 'policies' | 'deadline';

/** What the validating webhook hands the recorder for one agent review it decided. */
export interface RecordEntry {
  readonly at: Date;
  readonly request: AdmissionRequest;
  readonly agent: string;
  /** The policies that matched the agent, in order. */
  readonly policies: readonly Policy[];
  readonly decidedBy: DecidedBy;
  readonly lookups: ViewLookups | undefined;
  /** The interpreted kind (`DaemonSet`...), to keep the nodes only where they count. */
  readonly kind: string;
  /** The view's age in milliseconds; undefined before its first sync. */
  readonly staleness: number | undefined;
  /** Why the view's facts were unknown, when they were. */
  readonly stale: string | undefined;
  /** One per policy, in the order of `policies`; undefined when decided by the deadline. */
  readonly facts: readonly RecordedPolicyFacts[] | undefined;
  readonly decision: Decision;
  readonly lead: Judgement | undefined;
  readonly from: number;
  /** The agent's own count (held by the mutating call when it clamped). */
  readonly requested: number;
  readonly to: number;
  /** The episode's verdict, when the request was growth. */
  readonly episodeVerdict: 'allowed' | 'denied' | 'clamped' | undefined;
  /** Whether this review's episode key was new, when it was growth. */
  readonly episode: 'recorded' | 'duplicate' | undefined;
}

/** One policy as a record names it. */
export interface RecordedPolicy {
  readonly name: string;
  readonly mode: Policy['mode'];
  readonly version: string;
}

/** The verdict of the validating webhook, and the episode's numbers. */
export interface RecordedVerdict {
  readonly decision: 'allowed' | 'denied';
  readonly policy: string | null;
  readonly limit: string | null;
  readonly code: string | null;
  /** The denial message, or the warnings joined by newlines. */
  readonly message: string;
  readonly growth: boolean;
  readonly from: number;
  readonly to: number;
  readonly requested: number;
  readonly admitted: number;
  readonly need: number | null;
  readonly needSource: string | null;
  readonly allowance: number | null;
  readonly measured: boolean;
  readonly fallback: boolean;
  readonly episode: 'recorded' | 'duplicate' | null;
  readonly episodeVerdict: 'allowed' | 'denied' | 'clamped' | null;
}

/** One line of a recording. */
export interface ReviewRecord {
  readonly format: typeof RECORDING_FORMAT;
  readonly time: string;
  readonly run: string;
  readonly webhook: 'validate';
  readonly agent: string;
  readonly request: AdmissionRequest;
  readonly policies: readonly RecordedPolicy[];
  readonly facts: {
    readonly decidedBy: DecidedBy;
    readonly staleness: number | null;
    readonly stale: string | null;
    /** The nodes, kept for a DaemonSet only (the one kind counted on them). */
    readonly nodes: ViewLookups['nodes'] | null;
    readonly workloads: ViewLookups['workloads'];
    readonly policies: readonly RecordedPolicyFacts[] | null;
  };
  readonly verdict: RecordedVerdict;
}

/** The verdict fields a decision determines: what a replay compares. */
export function verdictOfDecision(decision: Decision): Pick<RecordedVerdict, 'decision' | 'policy' | 'limit' | 'code' | 'message'> {
  const a = decision.auditAnnotations;
  return {
    decision: decision.kind === 'denied' ? 'denied' : 'allowed',
    policy: a.policy ?? null,
    limit: a.limit ?? null,
    code: a.code ?? null,
    message: decision.kind === 'denied' ? decision.message : decision.warnings.join('\n'),
  };
}

/** The line a recorder writes for an entry (without the newline). */
export function recordDocument(entry: RecordEntry, run: string): ReviewRecord {
  const lead = entry.lead;
  const denied = entry.decision.kind === 'denied';
  return {
    format: RECORDING_FORMAT,
    time: entry.at.toISOString(),
    run,
    webhook: 'validate',
    agent: entry.agent,
    request: sanitizeRequest(entry.request),
    policies: entry.policies.map((p) => ({ name: p.name, mode: p.mode, version: policyVersion(p) })),
    facts: {
      decidedBy: entry.decidedBy,
      staleness: entry.staleness ?? null,
      stale: entry.stale ?? null,
      nodes: entry.kind === 'DaemonSet' ? (entry.lookups?.nodes ?? null) : null,
      workloads: entry.lookups?.workloads ?? [],
      policies: entry.facts ?? null,
    },
    verdict: {
      ...verdictOfDecision(entry.decision),
      growth: entry.episodeVerdict !== undefined,
      from: entry.from,
      to: entry.to,
      requested: entry.requested,
      admitted: denied ? entry.from : entry.to,
      need: lead?.needUsed ?? null,
      needSource: lead?.need.kind === 'measured' ? lead.need.source : (lead?.need.kind ?? null),
      allowance: lead?.allowance ?? null,
      measured: entry.decidedBy === 'deadline' || (lead !== undefined && lead.need.kind !== 'unmeasured'),
      fallback: entry.decidedBy === 'deadline' || (lead?.fallback ?? false),
      episode: entry.episode ?? null,
      episodeVerdict: entry.episodeVerdict ?? null,
    },
  };
}
