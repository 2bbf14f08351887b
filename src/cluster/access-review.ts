import type { Logger } from 'pino';
import { pino } from 'pino';
import type { Clock } from '../clock.ts';
import type { AgentIdentity } from '../core/types.ts';
import { excerpt, lookupSignals, readBodyCapped, requestFailure } from '../load/http-failure.ts';
import { ShortCache } from '../load/short-cache.ts';
import { type KubeConnection, kubeFetch } from './kube-http.ts';

/** Who is asked about: a user name and the groups it authenticates with. */
export interface AccessSubject {
  readonly user: string;
  readonly groups: readonly string[];
}

/** What is asked: a verb on a resource (or one of its subresources) in a namespace, optionally by name. */
export interface ResourceAccess {
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource?: string | undefined;
  readonly namespace: string;
  readonly name?: string | undefined;
}

export interface SubjectAccessReviewsOptions {
  readonly connection: KubeConnection;
  readonly clock: Clock;
  readonly logger?: Logger | undefined;
  /** How long an answer is reused (default 60 s): a role binding changes rarely, a decision happens often. */
  readonly ttlMs?: number | undefined;
  /** How long a failure is reused (default 1 s), so that an API in trouble is not asked once per request. */
  readonly failureTtlMs?: number | undefined;
  /** Deadline of one review (default 1 s): well inside the webhook's timeout. */
  readonly timeoutMs?: number | undefined;
  /** Answers kept at most (default 10,000); the oldest go first. */
  readonly maxEntries?: number | undefined;
  /** A failure is logged at most once per interval (default 60 s). */
  readonly logIntervalMs?: number | undefined;
}

const SAR_PATH = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
/** A SubjectAccessReview answer is a few hundred bytes; anything far larger is not one. */
const MAX_ANSWER_BYTES = 64 << 10;

/**
 * Asks the API server whether a subject may do something: `POST
 * /apis/authorization.k8s.io/v1/subjectaccessreviews`, which every authorizer the cluster
 * runs answers (RBAC, a webhook authorizer, Node), so the answer is the cluster's own
 * rather than the guard's reading of role bindings. Answers are cached for `ttlMs`, with
 * one review in flight per question.
 *
 * Undefined means "not known": an error, a timeout, an answer that is not a review, or the
 * caller's deadline passing first. Callers that decide whether to trust something must
 * treat that as "may" (the strict side).
 */
export class SubjectAccessReviews {
  readonly #connection: KubeConnection;
  readonly #baseUrl: string;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #failureTtlMs: number;
  readonly #timeoutMs: number;
  readonly #logIntervalMs: number;
  readonly #cache: ShortCache<boolean | undefined>;
  #lastLoggedMs: number | undefined;
  #suppressed = 0;

  constructor(options: SubjectAccessReviewsOptions) {
    this.#connection = options.connection;
    this.#baseUrl = options.connection.baseUrl.replace(/\/+$/, '');
    this.#logger = options.logger ?? pino({ enabled: false });
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#failureTtlMs = options.failureTtlMs ?? 1_000;
    this.#timeoutMs = options.timeoutMs ?? 1_000;
    this.#logIntervalMs = options.logIntervalMs ?? 60_000;
    this.#cache = new ShortCache({ clock: options.clock, maxEntries: options.maxEntries ?? 10_000 });
  }

  /** Whether the subject may do it: true, false, or undefined when that could not be learnt. */
  async allowed(subject: AccessSubject, access: ResourceAccess, signal: AbortSignal): Promise<boolean | undefined> {
    const key = JSON.stringify([
      subject.user,
      [...subject.groups].sort(),
      access.verb,
      access.group,
      access.resource,
      access.subresource ?? '',
      access.namespace,
      access.name ?? '',
    ]);
    const answer = await this.#cache.get(
      key,
      signal,
      (lookupSignal) => this.#review(subject, access, lookupSignal),
      (allowed) => (allowed === undefined ? this.#failureTtlMs : this.#ttlMs),
    );
    return 'aborted' in answer ? undefined : answer.value;
  }

  async #review(subject: AccessSubject, access: ResourceAccess, signal: AbortSignal): Promise<boolean | undefined> {
    const signals = lookupSignals(signal, this.#timeoutMs);
    const what = `a SubjectAccessReview at ${this.#baseUrl}`;
    const body = JSON.stringify({
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: subject.user,
        groups: subject.groups,
        resourceAttributes: {
          verb: access.verb,
          group: access.group,
          resource: access.resource,
          ...(access.subresource ? { subresource: access.subresource } : {}),
          namespace: access.namespace,
          ...(access.name ? { name: access.name } : {}),
        },
      },
    });
    try {
      const res = await kubeFetch(this.#connection, SAR_PATH, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: signals.signal,
      });
      const text = await readBodyCapped(res, MAX_ANSWER_BYTES);
      if (res.status < 200 || res.status >= 300) {
        const hint = res.status === 403 ? " (the guard's RBAC needs create on subjectaccessreviews.authorization.k8s.io)" : '';
        return this.#failed(`${what} answered HTTP ${res.status}${hint}: ${excerpt(text ?? '')}`);
      }
      const status = parseStatus(text);
      if (status === undefined) return this.#failed(`${what} answered something that is not a SubjectAccessReview status`);
      // `denied` is an authorizer's explicit no; `allowed` false without it is "no opinion", which is also a no.
      return status.allowed && !status.denied;
    } catch (error) {
      return this.#failed(requestFailure(error, { what, signals, timeoutMs: this.#timeoutMs }).detail);
    }
  }

  #failed(detail: string): undefined {
    const now = this.#clock.monotonicMs();
    if (this.#lastLoggedMs !== undefined && now - this.#lastLoggedMs < this.#logIntervalMs) {
      this.#suppressed += 1;
      return undefined;
    }
    this.#logger.warn(
      { detail, suppressed: this.#suppressed },
      'SubjectAccessReview failed; whether the agent may write is unknown, which counts as may',
    );
    this.#lastLoggedMs = now;
    this.#suppressed = 0;
    return undefined;
  }
}

function parseStatus(text: string | undefined): { allowed: boolean; denied: boolean } | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const status = typeof parsed === 'object' && parsed !== null ? (parsed as { status?: unknown }).status : undefined;
  if (typeof status !== 'object' || status === null) return undefined;
  const { allowed, denied } = status as { allowed?: unknown; denied?: unknown };
  if (typeof allowed !== 'boolean') return undefined;
  return { allowed, denied: denied === true };
}

/**
 * The groups a SubjectAccessReview asks about for an agent: those its request carried;
 * for a service account without them, the groups every service-account token
 * authenticates with. Undefined for any other user without groups: a review of the user
 * alone would miss grants to its groups and answer a no that is not one.
 */
export function accessSubjectOf(agent: AgentIdentity): AccessSubject | undefined {
  if (agent.groups !== undefined) return { user: agent.username, groups: agent.groups };
  const sa = agent.serviceAccount;
  if (sa === undefined) return undefined;
  return {
    user: agent.username,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${sa.namespace}`, 'system:authenticated'],
  };
}
