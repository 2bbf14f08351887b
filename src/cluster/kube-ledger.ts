import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import {
  type AgentLedgerState,
  DEFAULT_LEDGER_LIMITS,
  emptyState,
  enforceBounds,
  type LedgerLimits,
  parseState,
  serializeState,
} from '../core/ledger-state.ts';
import { GuardError } from '../errors.ts';
import type { KubeConnection } from './kube-http.ts';
import { type KubeAnswer, kubeJson } from './kube-rest.ts';
import { DEFAULT_MAX_AGENTS } from './in-memory-ledger.ts';
import { LruMap } from './lru-map.ts';
import { countEvictions, type LedgerMetrics, type LedgerStep, TransactionalLedger } from './ledger.ts';

/** How the ledger reaches the Kubernetes API: the same connection the view uses. */
export type LedgerConnection = KubeConnection;

/** Options of the shared ledger. */
export interface KubeLedgerOptions {
  readonly connection: LedgerConnection;
  /** The guard's own namespace, where one ConfigMap per agent lives. */
  readonly namespace: string;
  readonly clock: Clock;
  /** Windows and bounds of the state (defaults: 1 h metrics window, 24 h buckets, 2 min reservations). */
  readonly limits?: Partial<LedgerLimits> | undefined;
  /** Full episode records kept in this process (default 0: none). */
  readonly maxEpisodes?: number | undefined;
  /** Reads and writes per round before giving up with RG_ERR_LEDGER_CONFLICT (default 6). */
  readonly maxAttempts?: number | undefined;
  /** Backoff between attempts: full jitter up to base × 2^(attempt−1), at most max (defaults 5 ms, 100 ms). */
  readonly backoffBaseMs?: number | undefined;
  readonly backoffMaxMs?: number | undefined;
  /** Timeout of one HTTP call (default 1 s). */
  readonly requestTimeoutMs?: number | undefined;
  /**
   * Time one round may take, retries included (default 2.5 s): a decision waits for it,
   * and the apiserver's webhook timeout is 10 s by default.
   */
  readonly roundTimeoutMs?: number | undefined;
  /** Source of jitter in [0, 1) (default Math.random); tests pass a seeded one. */
  readonly random?: (() => number) | undefined;
  readonly metrics?: LedgerMetrics | undefined;
  readonly logger?: Logger | undefined;
  /**
   * How long a decision that writes nothing is answered from the state this process last
   * read or wrote, without a call (default 1 s; 0: every round reads). Writes always go by
   * compare-and-swap, whatever the age of the state they start from.
   */
  readonly readCacheTtlMs?: number | undefined;
  /** Agents whose last state is kept for that (default 10 000; least recently used out). */
  readonly maxCachedAgents?: number | undefined;
}

/** The ConfigMap as last read or written (undefined: there was none), its state, and when. */
interface CachedState {
  readonly object: ConfigMap | undefined;
  readonly state: AgentLedgerState;
  readonly at: number;
}

/** A failure of the Kubernetes API other than a conflict: unreachable, a timeout, an unexpected status. */
export class KubeLedgerError extends Error {
  /** The HTTP status, when there was an answer. */
  readonly status: number | undefined;

  constructor(message: string, status: number | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubeLedgerError';
    this.status = status;
  }
}

const PREFIX = 'replica-guard-ledger-';
export const LEDGER_AGENT_ANNOTATION = 'replica-guard.io/agent';
export const LEDGER_LABELS: Readonly<Record<string, string>> = {
  'app.kubernetes.io/name': 'replica-guard',
  'app.kubernetes.io/component': 'ledger',
};

/**
 * The ConfigMap name of an agent's ledger: a readable hint from the identity (so that
 * `kubectl get cm` shows whose ledger it is) and 80 bits of its SHA-256 (so that two
 * agents never share one, whatever characters their names use). A DNS-1123 subdomain of
 * at most 82 characters. The full identity is kept in an annotation and in `data.agent`.
 */
export function ledgerConfigMapName(agent: string): string {
  const hash = createHash('sha256').update(agent).digest('hex').slice(0, 20);
  const hint = agent
    .toLowerCase()
    .replace(/^system:serviceaccount:/, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return hint ? `${PREFIX}${hint}-${hash}` : `${PREFIX}${hash}`;
}

interface ConfigMap {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  data?: Record<string, string>;
  [key: string]: unknown;
}

type HttpAnswer = KubeAnswer;

/** One caller's transaction waiting in a batch; `apply` may run once per attempt. */
interface Pending {
  apply(state: AgentLedgerState): AgentLedgerState | undefined;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * The shared ledger: one ConfigMap per agent in the guard's namespace, the state JSON in
 * `data.state`, changed by read → apply → write with the read resourceVersion
 * (compare-and-swap). A write that meets 409 (another replica wrote first) re-reads and
 * re-runs the steps on the fresher state, so two guard processes never both spend the
 * same allowance; after `maxAttempts` the callers get RG_ERR_LEDGER_CONFLICT (a denial).
 *
 * Writes are queued per agent in this process: the transactions that arrive while a round
 * is in flight are applied together in the next one (one GET, one PUT for the batch, each
 * caller getting its own result), so a burst from one agent costs two rounds rather than a
 * storm of conflicts between its own requests.
 */
export class KubeLedger extends TransactionalLedger {
  readonly #options: KubeLedgerOptions;
  readonly #maxAttempts: number;
  readonly #requestTimeoutMs: number;
  readonly #roundTimeoutMs: number;
  readonly #random: () => number;
  readonly #queues = new Map<string, Pending[]>();
  readonly #readCacheTtlMs: number;
  /** Per agent, the state this process last read or wrote, and when (monotonic). */
  readonly #cache: LruMap<CachedState>;
  readonly #running = new Set<string>();
  readonly #drains = new Set<Promise<void>>();
  /** Agents whose ConfigMap held unreadable data, logged once each. */
  readonly #warned = new Set<string>();

  constructor(options: KubeLedgerOptions) {
    super({ ...DEFAULT_LEDGER_LIMITS, ...options.limits }, { maxEpisodes: options.maxEpisodes ?? 0, metrics: options.metrics });
    this.#options = options;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 6);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 1000;
    this.#roundTimeoutMs = options.roundTimeoutMs ?? 2500;
    this.#random = options.random ?? Math.random;
    this.#readCacheTtlMs = options.readCacheTtlMs ?? 1000;
    this.#cache = new LruMap(options.maxCachedAgents ?? DEFAULT_MAX_AGENTS);
  }

  transact<T>(agent: string, step: LedgerStep<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let result: { value: T } | undefined;
      const pending: Pending = {
        apply(state) {
          const out = step(state);
          result = { value: out.result };
          return out.next;
        },
        resolve() {
          if (result) resolve(result.value);
          else reject(new Error('ledger transaction settled before it ran'));
        },
        reject,
      };
      const queue = this.#queues.get(agent);
      if (queue) queue.push(pending);
      else this.#queues.set(agent, [pending]);
      if (!this.#running.has(agent)) {
        const drained: Promise<void> = this.#drain(agent).finally(() => this.#drains.delete(drained));
        this.#running.add(agent);
        this.#drains.add(drained);
      }
    });
  }

  /** The agent's state as this process last read or wrote it, without a call (undefined: none kept). */
  lastKnown(agent: string): AgentLedgerState | undefined {
    return this.#cache.peek(agent)?.state;
  }

  /** Resolves once every transaction queued so far, and any queued meanwhile, has settled: a stopping guard's last writes. */
  override async idle(): Promise<void> {
    while (this.#drains.size > 0) await Promise.allSettled([...this.#drains]);
  }

  async #drain(agent: string): Promise<void> {
    // Let the transactions started in the same tick join the first round.
    await Promise.resolve();
    for (;;) {
      const batch = this.#queues.get(agent);
      if (!batch || batch.length === 0) break;
      this.#queues.delete(agent);
      await this.#round(agent, batch);
    }
    this.#running.delete(agent);
  }

  /** One batch: read, apply every step in arrival order, write; on 409 again from the read. Never throws. */
  async #round(agent: string, batch: readonly Pending[]): Promise<void> {
    const { clock, metrics } = this.#options;
    const started = clock.monotonicMs();
    const deadline = started + this.#roundTimeoutMs;
    const name = ledgerConfigMapName(agent);
    metrics?.batchSize.observe(batch.length);
    let outcome = 'error';
    try {
      // The first try runs on the state this process last read or wrote, without a call:
      // a write still goes by compare-and-swap, so an older state only costs a retry.
      let cached = this.#cache.get(agent);
      for (let attempt = 1; ; ) {
        const read = cached ?? (await this.#read(agent, name, deadline));
        const { state, failures } = applyBatch(batch, read.state);
        if (state === read.state) {
          if (cached !== undefined && (this.#readCacheTtlMs <= 0 || clock.monotonicMs() - cached.at > this.#readCacheTtlMs)) {
            // Nothing to write, but the answer may rest on what other replicas wrote since.
            cached = undefined;
            continue;
          }
          outcome = cached === undefined ? 'unchanged' : 'cached';
          settleBatch(batch, failures);
          return;
        }
        const bounded = enforceBounds(state, this.limits);
        if (!(await this.#write(agent, name, read.object, bounded, deadline))) {
          cached = undefined;
          metrics?.conflicts.inc();
          if (attempt >= this.#maxAttempts || clock.monotonicMs() >= deadline) {
            outcome = 'exhausted';
            metrics?.conflictsExhausted.inc();
            const err = new GuardError(
              'RG_ERR_LEDGER_CONFLICT',
              `RG_ERR_LEDGER_CONFLICT: the shared ledger of ${agent} kept changing under ${attempt} attempts; ` +
                'growth is denied until it can be recorded. Retry shortly.',
            );
            for (const p of batch) p.reject(err);
            return;
          }
          await sleep(this.#backoff(attempt));
          attempt++;
          continue;
        }
        countEvictions(metrics, read.state, bounded);
        outcome = 'written';
        settleBatch(batch, failures);
        return;
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      metrics?.writeDuration.observe({ outcome }, (clock.monotonicMs() - started) / 1000);
    }
  }

  #backoff(attempt: number): number {
    const cap = Math.min(this.#options.backoffMaxMs ?? 100, (this.#options.backoffBaseMs ?? 5) * 2 ** (attempt - 1));
    return this.#random() * cap;
  }

  #path(name?: string): string {
    const base = `/api/v1/namespaces/${encodeURIComponent(this.#options.namespace)}/configmaps`;
    return name === undefined ? base : `${base}/${name}`;
  }

  async #read(agent: string, name: string, deadline: number): Promise<CachedState> {
    const answer = await this.#http('GET', this.#path(name), undefined, deadline);
    if (answer.status === 404) return this.#remember(agent, undefined, emptyState());
    if (answer.status !== 200 || !isConfigMap(answer.body)) throw unexpected('read', name, answer);
    const object = answer.body;
    const owner = object.data?.agent;
    if (owner !== undefined && owner !== agent) {
      // Never mix two agents' allowances: a collision of 80 bits, or someone else's object.
      throw new KubeLedgerError(`ConfigMap ${name} holds the ledger of ${JSON.stringify(owner)}, not of ${JSON.stringify(agent)}`, 200);
    }
    const parsed = parseState(object.data?.state, this.limits);
    if (parsed.problems.length > 0 && !this.#warned.has(name)) {
      this.#warned.add(name);
      this.#options.logger?.warn({ configMap: name, agent, problems: parsed.problems }, 'the ledger ConfigMap held unreadable data; it was read as far as possible');
    }
    return this.#remember(agent, object, parsed.state);
  }

  /** Keeps what was read or written as the agent's cached state; a write that answered no object drops it. */
  #remember(agent: string, object: ConfigMap | undefined, state: AgentLedgerState): CachedState {
    const entry: CachedState = { object, state, at: this.#options.clock.monotonicMs() };
    this.#cache.set(agent, entry);
    return entry;
  }

  /** Creates or replaces the ConfigMap; false on a conflict (someone else wrote first). */
  async #write(agent: string, name: string, read: ConfigMap | undefined, state: AgentLedgerState, deadline: number): Promise<boolean> {
    const text = serializeState(state);
    if (!read) {
      const body: ConfigMap = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace: this.#options.namespace, labels: { ...LEDGER_LABELS }, annotations: { [LEDGER_AGENT_ANNOTATION]: agent } },
        data: { agent, state: text },
      };
      const answer = await this.#http('POST', this.#path(), body, deadline);
      if (answer.status === 201 || answer.status === 200) return this.#written(agent, answer.body, state);
      // Another replica created it between our GET and POST: read it and run again.
      if (answer.status === 409) return false;
      throw unexpected('create', name, answer);
    }
    const body: ConfigMap = {
      ...read,
      metadata: {
        ...read.metadata,
        labels: { ...read.metadata.labels, ...LEDGER_LABELS },
        annotations: { ...read.metadata.annotations, [LEDGER_AGENT_ANNOTATION]: agent },
      },
      data: { ...read.data, agent, state: text },
    };
    const answer = await this.#http('PUT', this.#path(name), body, deadline);
    if (answer.status === 200) return this.#written(agent, answer.body, state);
    // 409: written since our read. 404: deleted since our read (the next read sees it gone).
    if (answer.status === 409 || answer.status === 404) return false;
    throw unexpected('update', name, answer);
  }

  /** A committed write: the object it answered (with its new resourceVersion) is the next round's read. */
  #written(agent: string, body: unknown, state: AgentLedgerState): true {
    if (isConfigMap(body)) this.#remember(agent, body, state);
    else this.#cache.delete(agent);
    return true;
  }

  async #http(method: string, path: string, body: unknown, deadline: number): Promise<HttpAnswer> {
    const remaining = deadline - this.#options.clock.monotonicMs();
    if (remaining <= 0) throw new KubeLedgerError(`ledger round ran out of its ${this.#roundTimeoutMs} ms before ${method} ${path}`, undefined);
    const timeoutMs = Math.max(1, Math.min(this.#requestTimeoutMs, remaining));
    try {
      return await kubeJson(this.#options.connection, method, path, body, timeoutMs);
    } catch (err) {
      throw new KubeLedgerError(`ledger ${(err as Error).message}`, undefined, { cause: err });
    }
  }
}

/** Runs every step of a batch in arrival order on `read`; a step that throws fails its own caller only. */
function applyBatch(batch: readonly Pending[], read: AgentLedgerState): { state: AgentLedgerState; failures: Map<Pending, unknown> } {
  let state = read;
  const failures = new Map<Pending, unknown>();
  for (const p of batch) {
    try {
      const next = p.apply(state);
      if (next !== undefined) state = next;
    } catch (err) {
      failures.set(p, err);
    }
  }
  return { state, failures };
}

function settleBatch(batch: readonly Pending[], failures: ReadonlyMap<Pending, unknown>): void {
  for (const p of batch) {
    if (failures.has(p)) p.reject(failures.get(p));
    else p.resolve();
  }
}

function isConfigMap(body: unknown): body is ConfigMap {
  if (typeof body !== 'object' || body === null) return false;
  const metadata = (body as { metadata?: unknown }).metadata;
  return typeof metadata === 'object' && metadata !== null && typeof (metadata as { name?: unknown }).name === 'string';
}

function unexpected(what: string, name: string, answer: HttpAnswer): KubeLedgerError {
  const b = answer.body;
  const message =
    typeof b === 'object' && b !== null && typeof (b as { message?: unknown }).message === 'string'
      ? (b as { message: string }).message
      : String(b).slice(0, 200);
  return new KubeLedgerError(`ledger ${what} of ConfigMap ${name} answered HTTP ${answer.status}: ${message}`, answer.status);
}
