import type { Logger } from 'pino';
import YAML from 'yaml';
import { placeholderNodes } from '../../src/admission/node-eligibility.ts';
import type { AdmissionReviewResponse } from '../../src/admission/response.ts';
import { type ActivePolicies, createReviewHandler } from '../../src/admission/review-handler.ts';
import type { SwitchGate } from '../../src/admission/safety-switches.ts';
import type { EventSink } from '../../src/cluster/event-recorder.ts';
import type { Webhook } from '../../src/admission/verdict.ts';
import { buildApp, type GuardApp, type Readiness } from '../../src/app.ts';
import { InMemoryLedger } from '../../src/cluster/in-memory-ledger.ts';
import { InMemoryClusterView } from '../../src/cluster/in-memory-view.ts';
import type { LoadSource } from '../../src/load/load-source.ts';
import { StaticLoadSource } from '../../src/load/static-load-source.ts';
import { compileAgentMatcher } from '../../src/policy/agent-matcher.ts';
import { formatProblem, parsePolicyText } from '../../src/policy/policy-loader.ts';
import type { Recorder } from '../../src/record/recorder.ts';
import type { GuardMetrics } from '../../src/telemetry/metrics.ts';
import { AGENT, type Review } from './fixtures.ts';
import { capturingLogger, freshMetrics, type LogLine, type TestClock, testClock } from './telemetry.ts';

/** A policy document as YAML: `policy('cap', { mode: 'enforce', limits: { perWorkload: 4 } })`. */
export function policy(name: string, spec: Record<string, unknown>): string {
  const withAgents = { agents: { serviceAccounts: ['agents:*'] }, ...spec };
  return YAML.stringify({ apiVersion: 'replica-guard.io/v1alpha1', kind: 'ReplicaPolicy', metadata: { name }, spec: withAgents });
}

/** Several policy documents in one file. */
export function policies(...docs: string[]): string {
  return docs.join('---\n');
}

/** Policies parsed from inline YAML; throws on any error, so a test never runs on a half-read set. */
export function activePolicies(yaml: string): ActivePolicies {
  const { policies: parsed, problems } = parsePolicyText(yaml, 'inline.yaml');
  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map(formatProblem).join('\n'));
  return { policies: parsed, matcher: compileAgentMatcher(parsed) };
}

/** The audit line of one agent decision. */
export interface AuditLine {
  readonly uid: string;
  readonly webhook: Webhook;
  readonly agent: string;
  readonly operation: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly dryRun: boolean;
  readonly from: number;
  readonly to: number;
  readonly need: number | null;
  readonly allowance: number | null;
  readonly verdict: 'allowed' | 'denied' | 'clamped';
  readonly policy?: string;
  readonly limit?: string;
  readonly episode?: 'recorded' | 'duplicate';
  readonly code?: string;
  readonly justification?: string;
  readonly switch?: string;
}

/** The answer to one POST: the HTTP status and the parsed body. */
export interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Readonly<Record<string, unknown>>;
}

/** The body of an error answer (HTTP 4xx/5xx). */
export interface ErrorBody {
  readonly code: string;
  readonly message: string;
  readonly uid?: string;
}

export type ReviewAnswer = AdmissionReviewResponse['response'];

export interface GuardOptions {
  /** Inline policy YAML; null for no policy set at all (not ready). */
  readonly policies: string | null;
  readonly loadSource?: LoadSource;
  readonly nodeCount?: number;
  readonly deadlineMarginMs?: number;
  readonly defaultTimeoutMs?: number;
  /** Where the validating webhook records agent reviews. */
  readonly recorder?: Recorder;
  /** The safety switches, built on the guard's own clock and logger. */
  readonly switches?: (clock: TestClock, logger: Logger) => SwitchGate;
  /** Where decision Events go. */
  readonly events?: (clock: TestClock, logger: Logger) => EventSink;
  /** Runs what follows an answer (the audit line, the recording); default setImmediate. */
  readonly afterAnswer?: (work: () => void) => void;
}

export interface TestGuard {
  readonly app: GuardApp;
  readonly logger: Logger;
  readonly lines: LogLine[];
  readonly metrics: GuardMetrics;
  readonly clock: TestClock;
  readonly view: InMemoryClusterView;
  readonly ledger: InMemoryLedger;
  /** Replaces the policy set (null: none), as a reload would. */
  setPolicies(yaml: string | null): void;
  post(path: string, body: unknown, options?: { query?: string; contentType?: string }): Promise<Answer>;
  /** POSTs a review to a webhook and returns its `response`, failing unless HTTP 200 with the uid echoed. */
  review(webhook: Webhook, body: Review, query?: string): Promise<ReviewAnswer>;
  /** Every audit line so far, in order. */
  audits(): AuditLine[];
  /** The last audit line. */
  lastAudit(): AuditLine;
  close(): Promise<void>;
}

/** A guard built as `assembleGuard` builds it, from in-memory parts, answering through `inject()`. */
export function testGuard(options: GuardOptions): TestGuard {
  const { logger, lines } = capturingLogger();
  const metrics = freshMetrics();
  const clock = testClock();
  const view = new InMemoryClusterView(placeholderNodes(options.nodeCount ?? 3));
  const ledger = new InMemoryLedger({ windowMs: 3_600_000, maxEpisodes: 10_000 });
  let active = options.policies === null ? undefined : activePolicies(options.policies);
  const handleReview = createReviewHandler({
    policies: () => active,
    view,
    loadSource: options.loadSource ?? new StaticLoadSource(),
    ledger,
    clock,
    logger,
    metrics,
    scaleResources: [],
    deadlineMarginMs: options.deadlineMarginMs ?? 2_000,
    defaultTimeoutMs: options.defaultTimeoutMs ?? 10_000,
    maxStalenessMs: 60_000,
    recorder: options.recorder,
    switches: options.switches?.(clock, logger),
    events: options.events?.(clock, logger),
    afterAnswer: options.afterAnswer,
  });
  const readiness = (): Readiness =>
    active ? { ready: true, reasons: [] } : { ready: false, reasons: ['no valid policy set loaded'] };
  const app = buildApp({ handleReview, metrics, logger, readiness });

  const post: TestGuard['post'] = async (path, body, opts = {}) => {
    const res = await app.webhook.inject({
      method: 'POST',
      url: opts.query ? `${path}?${opts.query}` : path,
      headers: { 'content-type': opts.contentType ?? 'application/json' },
      payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });
    // The audit line and the recording follow the answer by one turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    let parsed: unknown;
    try {
      parsed = res.json();
    } catch {
      parsed = res.body;
    }
    return { status: res.statusCode, body: parsed, headers: res.headers };
  };

  const audits = (): AuditLine[] =>
    lines.filter((l) => l.msg === 'decision' && typeof l.audit === 'object').map((l) => l.audit as AuditLine);

  return {
    app,
    logger,
    lines,
    metrics,
    clock,
    view,
    ledger,
    setPolicies(yaml) {
      active = yaml === null ? undefined : activePolicies(yaml);
    },
    post,
    async review(webhook, body, query) {
      const res = await post(`/${webhook}`, body, query === undefined ? {} : { query });
      if (res.status !== 200) {
        const logged = lines.filter((l) => l.level === 'error').map((l) => JSON.stringify(l.err ?? l.msg));
        throw new Error(`/${webhook} answered HTTP ${res.status}: ${JSON.stringify(res.body)}; errors logged: ${logged.join('\n')}`);
      }
      const answer = res.body as AdmissionReviewResponse;
      if (answer.apiVersion !== 'admission.k8s.io/v1' || answer.kind !== 'AdmissionReview') {
        throw new Error(`not an AdmissionReview: ${JSON.stringify(res.body)}`);
      }
      if (answer.response.uid !== body.request.uid) {
        throw new Error(`uid ${answer.response.uid} does not echo ${body.request.uid}`);
      }
      return answer.response;
    },
    audits,
    lastAudit() {
      const all = audits();
      const last = all[all.length - 1];
      if (!last) throw new Error('no audit line was logged');
      return last;
    },
    async close() {
      await Promise.all([app.webhook.close(), app.ops.close()]);
    },
  };
}

/** The agent's episodes kept in the ledger. */
export async function episodesOf(guard: TestGuard, agent = AGENT) {
  return guard.ledger.episodes(agent, new Date(0));
}

/** The decoded JSONPatch of a response. */
export function patchOf(answer: ReviewAnswer): unknown {
  if (answer.patch === undefined) return undefined;
  return JSON.parse(Buffer.from(answer.patch, 'base64').toString('utf8'));
}

/** The causes of a denial as a reason → message map. */
export function causesOf(answer: ReviewAnswer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of answer.status?.details?.causes ?? []) out[c.reason] = c.message;
  return out;
}
