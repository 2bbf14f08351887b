import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import { EventLimiter } from './event-limiter.ts';
import { type KubeConnection, kubeFetch } from './kube-http.ts';

/** The object an Event is about, as `involvedObject` names it. */
export interface InvolvedObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string | undefined;
}

/** One Event to record: a denial or a clamp of an agent's request. */
export interface DecisionEvent {
  /** The agent, for the rate limit. */
  readonly agent: string;
  readonly object: InvolvedObject;
  readonly reason: 'GrowthDenied' | 'GrowthClamped';
  readonly message: string;
}

/** Where decision Events go. `record` never blocks and never throws. */
export interface EventSink {
  record(event: DecisionEvent): void;
}

export interface KubeEventRecorderOptions {
  readonly connection: KubeConnection;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Events per agent per window (default 10 per minute). */
  readonly perAgent?: number | undefined;
  readonly windowMs?: number | undefined;
  /** Events waiting to be sent at most (default 100); more are dropped and counted. */
  readonly maxQueue?: number | undefined;
  /** The replica's name in `reportingInstance` (the pod's name). */
  readonly instance?: string | undefined;
}

/** The Event's message is shown by kubectl describe; the API allows 1 KiB more or less. */
const MAX_MESSAGE = 1024;

/**
 * Records decision Events through the API (core/v1 Events in the object's namespace), off
 * the request path: queued, sent one at a time, at most `perAgent` per agent per window.
 * A failure is counted and logged once per minute; the audit log remains the record and
 * the Event only the signal (the apiserver expires Events after its --event-ttl, 1 h by default).
 */
export class KubeEventRecorder implements EventSink {
  readonly #options: KubeEventRecorderOptions;
  readonly #limiter: EventLimiter;
  readonly #queue: DecisionEvent[] = [];
  readonly #outcomes: Counter<'outcome'>;
  #sending = false;
  #lastFailureLogMs: number | undefined;
  #idle: Promise<void> = Promise.resolve();

  constructor(options: KubeEventRecorderOptions) {
    this.#options = options;
    this.#limiter = new EventLimiter(options.perAgent ?? 10, options.windowMs ?? 60_000);
    this.#outcomes = new Counter({
      name: 'replica_guard_events_total',
      help: 'Kubernetes Events for denials and clamps, by outcome (sent, rate_limited, dropped, failed).',
      labelNames: ['outcome'],
      registers: [options.registry],
    });
  }

  record(event: DecisionEvent): void {
    if (!this.#limiter.take(event.agent, this.#options.clock.monotonicMs())) {
      this.#outcomes.inc({ outcome: 'rate_limited' });
      return;
    }
    if (this.#queue.length >= (this.#options.maxQueue ?? 100)) {
      this.#outcomes.inc({ outcome: 'dropped' });
      return;
    }
    this.#queue.push(event);
    if (!this.#sending) this.#idle = this.#drain();
  }

  /** Resolves once every queued Event has been sent or has failed (tests, shutdown). */
  flushed(): Promise<void> {
    return this.#idle;
  }

  async #drain(): Promise<void> {
    this.#sending = true;
    try {
      for (let event = this.#queue.shift(); event !== undefined; event = this.#queue.shift()) await this.#send(event);
    } finally {
      this.#sending = false;
    }
  }

  async #send(event: DecisionEvent): Promise<void> {
    const { connection, clock } = this.#options;
    const now = clock.now().toISOString();
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${event.object.name}.${randomBytes(8).toString('hex')}`, namespace: event.object.namespace },
      involvedObject: { ...event.object },
      reason: event.reason,
      message: event.message.length > MAX_MESSAGE ? `${event.message.slice(0, MAX_MESSAGE - 1)}…` : event.message,
      type: 'Warning',
      source: { component: 'replica-guard' },
      reportingComponent: 'replica-guard',
      reportingInstance: this.#options.instance ?? 'replica-guard',
      action: event.reason === 'GrowthDenied' ? 'Deny' : 'Clamp',
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      const res = await kubeFetch(connection, `/api/v1/namespaces/${encodeURIComponent(event.object.namespace)}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(5_000),
      });
      await res.arrayBuffer();
      if (res.status !== 201 && res.status !== 200) throw new Error(`HTTP ${res.status}`);
      this.#outcomes.inc({ outcome: 'sent' });
    } catch (err) {
      this.#outcomes.inc({ outcome: 'failed' });
      const nowMs = clock.monotonicMs();
      if (this.#lastFailureLogMs === undefined || nowMs - this.#lastFailureLogMs >= 60_000) {
        this.#lastFailureLogMs = nowMs;
        this.#options.logger.warn({ err, object: event.object }, "could not record a decision Event (the guard's RBAC needs create on events)");
      }
    }
  }
}
