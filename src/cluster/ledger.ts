import { Counter, Histogram, type Registry } from 'prom-client';
import type { Episode } from '../core/episode.ts';
import { EpisodeRecords } from './episode-records.ts';
import {
  type AgentLedgerState,
  expire,
  holdRequested,
  LEDGER_COLLECTIONS,
  type LedgerLimits,
  recordEpisodeKey,
  requestedFor,
} from '../core/ledger-state.ts';

/**
 * One step of a ledger transaction: reads the agent's state and says what to return and
 * what to write (`next: undefined`: nothing). It must be pure and synchronous: an
 * implementation may run it several times, each time on a fresher state, and only the
 * run whose write succeeds counts. That is how two guard processes never both spend the
 * same allowance.
 */
export type LedgerStep<T> = (state: AgentLedgerState) => { readonly result: T; readonly next: AgentLedgerState | undefined };

/**
 * What decisions share beyond the cluster itself (DESIGN.md "State, and more than one
 * replica"): per agent, the requested counts held by the mutating call, episode keys,
 * provenance, reservations, the rate of growth and the losses, as one
 * {@link AgentLedgerState} changed only by atomic per-agent transactions. The embedded
 * default keeps it in memory; the shared implementation keeps it in the Kubernetes API so
 * that every replica sees the same. Dry-run requests never reach it (the caller's job).
 */
export interface Ledger {
  /** The windows and bounds the state is kept with; a step calls `expire(state, now, ledger.limits)` first. */
  readonly limits: LedgerLimits;
  /**
   * Runs `step` on the agent's current state and writes its `next` atomically: no other
   * transaction for the agent, in this process or another, commits between the read the
   * step saw and the write. Resolves with the step's result; rejects with the step's own
   * error, or with `RG_ERR_LEDGER_CONFLICT` when the shared state kept changing under it.
   */
  transact<T>(agent: string, step: LedgerStep<T>): Promise<T>;
  /**
   * Keeps the agent's requested count under the episode key, unless one is already kept
   * (a reinvocation). The agent is the first element of the key (`episodeKey`).
   */
  holdRequested(key: string, requested: number, now: Date): Promise<void>;
  /** The requested count kept under the key by the mutating call, if any. */
  requested(key: string, now: Date): Promise<number | undefined>;
  /** Records the episode's key once within the window; false when it was already recorded. */
  recordEpisode(episode: Episode): Promise<boolean>;
  /**
   * Episodes of the agent recorded BY THIS PROCESS at or after `since`, oldest first: the
   * full records stay in process memory (the shared state keeps only keys and buckets),
   * and only when the ledger was made to keep them (`maxEpisodes` above 0); none by default.
   */
  episodes(agent: string, since: Date): Promise<readonly Episode[]>;
  /** Keeps the full record of an episode whose key a transaction recorded as new. */
  keepRecord(episode: Episode): void;
  /** Resolves once the transactions queued so far have settled (a ledger that applies them at once: at once). */
  idle(): Promise<void>;
}

/**
 * The agent an episode key belongs to. `episodeKey` makes keys as
 * `JSON.stringify([agent, workload, from, to])`; any other string is its own bucket, so
 * that a caller with hand-made keys still gets consistent (if unshared) behaviour.
 */
export function agentOfEpisodeKey(key: string): string {
  if (key.startsWith('["')) {
    try {
      const parsed: unknown = JSON.parse(key);
      if (Array.isArray(parsed) && typeof parsed[0] === 'string') return parsed[0];
    } catch {
      // not one of episodeKey's keys: fall through
    }
  }
  return key;
}

/** The ledger's own metrics, registered on the caller's registry. */
export interface LedgerMetrics {
  /** Writes refused because another writer changed the agent's state first (409). */
  readonly conflicts: Counter;
  /** Transaction rounds given up after the last retry: their callers got RG_ERR_LEDGER_CONFLICT. */
  readonly conflictsExhausted: Counter;
  /** Time of one round (read, steps, write, retries), by outcome. */
  readonly writeDuration: Histogram<'outcome'>;
  /** Transactions applied together in one round. */
  readonly batchSize: Histogram;
  /** Entries dropped by a bound while still live, by collection. */
  readonly evictions: Counter<'collection'>;
  /** Background housekeeping of one agent's state, by outcome (done, error). */
  readonly housekeeping: Counter<'outcome'>;
  /** Admitted growth by where it was decided: from this replica's allowance lease, or through the ledger. */
  readonly leaseDecisions: Counter<'path'>;
  /** Writes of growth admitted from a lease, behind the answers, by outcome (written, error). */
  readonly leaseWrites: Counter<'outcome'>;
}

/** Creates the ledger metrics on the given registry (never prom-client's global one). */
export function createLedgerMetrics(registry: Registry): LedgerMetrics {
  const registers = [registry];
  return {
    conflicts: new Counter({
      name: 'replica_guard_ledger_conflicts_total',
      help: 'Ledger writes refused with 409 because another guard replica changed the agent state first; each is retried on the fresh state.',
      registers,
    }),
    conflictsExhausted: new Counter({
      name: 'replica_guard_ledger_conflicts_exhausted_total',
      help: 'Ledger transaction rounds abandoned after the last compare-and-swap retry; their requests were denied with RG_ERR_LEDGER_CONFLICT.',
      registers,
    }),
    writeDuration: new Histogram({
      name: 'replica_guard_ledger_write_duration_seconds',
      help: 'Time of one ledger round (read, apply the batched transactions, write, retries), by outcome (written, unchanged, cached: answered from the state last read or written without a call, exhausted, error).',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    batchSize: new Histogram({
      name: 'replica_guard_ledger_batch_size',
      help: 'Transactions for one agent applied together in one ledger round.',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    }),
    evictions: new Counter({
      name: 'replica_guard_ledger_evictions_total',
      help: 'Ledger entries dropped by a size bound while still live, by collection (episodeKeys: an episode seen again counts twice).',
      labelNames: ['collection'],
      registers,
    }),
    housekeeping: new Counter({
      name: 'replica_guard_ledger_housekeeping_total',
      help: "Background housekeeping of one agent's ledger state (confirmations, expiry, forgetting deleted workloads), by outcome (done, error).",
      labelNames: ['outcome'],
      registers,
    }),
    leaseDecisions: new Counter({
      name: 'replica_guard_ledger_lease_decisions_total',
      help: "Growth decided by this replica, by path: lease (from its allowance lease, written after the answer) or ledger (through the shared ledger before the answer).",
      labelNames: ['path'],
      registers,
    }),
    leaseWrites: new Counter({
      name: 'replica_guard_ledger_lease_writes_total',
      help: 'Writes of growth admitted from an allowance lease, made after the answers, by outcome (written, error: tried again; the lease stays charged meanwhile).',
      labelNames: ['outcome'],
      registers,
    }),
  };
}

/** Counts the evictions a committed write added (the state keeps cumulative counts). */
export function countEvictions(metrics: LedgerMetrics | undefined, before: AgentLedgerState, after: AgentLedgerState): void {
  if (!metrics || before.evictions === after.evictions) return;
  for (const c of LEDGER_COLLECTIONS) {
    const n = after.evictions[c] - before.evictions[c];
    if (n > 0) metrics.evictions.inc({ collection: c }, n);
  }
}

/** Options shared by the ledgers for the episode records kept in process memory. */
export interface EpisodeRecordOptions {
  /**
   * At most this many full episode records are kept in this process; the oldest go first.
   * 0: none (decisions never read them; the risk metrics work from the ledger's buckets).
   */
  readonly maxEpisodes: number;
  readonly metrics?: LedgerMetrics | undefined;
}

/**
 * The convenience methods the review handler uses today, written once on top of
 * `transact`, plus the bounded in-process store of full episode records.
 */
export abstract class TransactionalLedger implements Ledger {
  readonly limits: LedgerLimits;
  readonly #metrics: LedgerMetrics | undefined;
  readonly #records: EpisodeRecords | undefined;
  #evictions = 0;

  protected constructor(limits: LedgerLimits, options: EpisodeRecordOptions) {
    this.limits = limits;
    this.#records = options.maxEpisodes > 0 ? new EpisodeRecords(options.maxEpisodes) : undefined;
    this.#metrics = options.metrics;
  }

  abstract transact<T>(agent: string, step: LedgerStep<T>): Promise<T>;

  /** Episode records dropped from this process's memory to stay within `maxEpisodes`. */
  get evictions(): number {
    return this.#evictions;
  }

  async holdRequested(key: string, requested: number, now: Date): Promise<void> {
    await this.transact(agentOfEpisodeKey(key), (state) => {
      const current = expire(state, now, this.limits);
      const next = holdRequested(current, key, requested, now, this.limits);
      // Expiry alone is not worth a write: it rides along with the next real change.
      return { result: undefined, next: next === current ? undefined : next };
    });
  }

  async requested(key: string, now: Date): Promise<number | undefined> {
    return this.transact(agentOfEpisodeKey(key), (state) => ({
      result: requestedFor(state, key, now, this.limits),
      next: undefined,
    }));
  }

  async recordEpisode(episode: Episode): Promise<boolean> {
    const isNew = await this.transact(episode.agent, (state) => {
      const out = recordEpisodeKey(expire(state, episode.at, this.limits), episode.key, episode.at, this.limits);
      return { result: out.isNew, next: out.isNew ? out.state : undefined };
    });
    if (isNew) this.#remember(episode);
    return isNew;
  }

  keepRecord(episode: Episode): void {
    this.#remember(episode);
  }

  async idle(): Promise<void> {
    // Nothing queued: a subclass that queues says otherwise.
  }

  async episodes(agent: string, since: Date): Promise<readonly Episode[]> {
    const out: Episode[] = [];
    if (this.#records === undefined) return out;
    for (const e of this.#records.values()) if (e.agent === agent && e.at >= since) out.push(e);
    return out;
  }

  #remember(episode: Episode): void {
    if (this.#records === undefined) return;
    const evicted = this.#records.remember(episode, this.limits.windowMs);
    if (evicted > 0) {
      this.#evictions += evicted;
      this.#metrics?.evictions.inc({ collection: 'episodeRecords' }, evicted);
    }
  }
}
