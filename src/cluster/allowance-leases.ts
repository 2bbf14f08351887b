import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { applyEpisodeRecord, type EpisodeRecord, type RecordOutcome } from '../admission/episode-record.ts';
import type { Clock } from '../clock.ts';
import { type AgentLedgerState, expire, leaseOf, setLease, spendLease, withoutLease } from '../core/ledger-state.ts';
import type { Ledger, LedgerMetrics, LedgerStep } from './ledger.ts';

/**
 * A lease holder's name for this process: the replica's name (its pod name in a cluster),
 * made safe, and a random suffix, so that a restarted pod never spends its predecessor's
 * lease.
 */
export function leaseHolderName(instance: string): string {
  const safe = instance.replace(/[^A-Za-z0-9._:-]+/g, '-').slice(0, 100) || 'guard';
  return `${safe}-${randomBytes(6).toString('hex')}`;
}

/**
 * A ledger whose last known state of an agent can be read without a call, and which
 * applies the transactions this process starts for one agent in the order they started
 * (as KubeLedger's per-agent queue does): a decision through the ledger then always sees
 * the spends written before it.
 */
export interface LeasableLedger extends Ledger {
  /** The agent's state as this process last read or wrote it (undefined: none kept). */
  lastKnown(agent: string): AgentLedgerState | undefined;
}

/**
 * How many more instances the policies of a decision allow on `state` (which leaves out
 * this replica's own lease): a lease is granted half of it, so that other replicas keep
 * the other half, and nothing when it is under two.
 */
export type LeaseRoom = (state: AgentLedgerState, now: Date) => number;

/** A growth admitted from the lease: answered already, written behind. */
export interface LeaseSpend {
  readonly record: EpisodeRecord;
  /** Instances it charges (the rate and pending instances its record adds). */
  readonly spent: number;
  readonly room: LeaseRoom;
}

/** Options of {@link AllowanceLeases}. */
export interface AllowanceLeasesOptions {
  readonly ledger: LeasableLedger;
  /** This replica's name in the leases: unique per process. */
  readonly holder: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The most instances one lease holds (default 8). */
  readonly maxInstances?: number | undefined;
  /** How long a lease lives after its last write (default 30 s); it is spent only in its first two thirds. */
  readonly ttlMs?: number | undefined;
  /** A lease unused this long is returned (default 2 s). */
  readonly idleMs?: number | undefined;
  /** How long spends wait to share their write (default 250 ms; the lease covers them meanwhile). */
  readonly writeDelayMs?: number | undefined;
  /**
   * How that wait is made: settles after `ms`, or at once when `signal` aborts (a
   * rejection counts as the end of the wait). Default: a timer that does not hold the
   * process open. A test passes its own to decide when the delay is over.
   */
  readonly wait?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  readonly metrics?: LedgerMetrics | undefined;
}

/** The default wait before a write behind: a timer that does not hold the process open, cut short by `signal`. */
function timerWait(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { ref: false, signal });
}

/** Per agent: spends not written yet, the ones being written, and whether the lease may be spent now. */
interface AgentLease {
  pending: LeaseSpend[];
  writing: LeaseSpend[];
  waiters: Map<LeaseSpend, (outcome: RecordOutcome | undefined) => void>;
  /** Rounds through the ledger in flight: nothing new is charged to the lease meanwhile. */
  syncing: number;
  /** Spends those rounds write. */
  syncTaken: LeaseSpend[];
  flushing: Promise<void> | undefined;
  /** Cuts short the wait before the next write behind: a round through the ledger must not wait for it. */
  hurry: AbortController | undefined;
  /** Settles when the last round that leaves the lease out of its view (a decision through the ledger, a return) has. */
  chain: Promise<void>;
  lastUsed: number;
  /** The last write behind failed: the next one waits for the timer, not for the next spend. */
  writeFailed: boolean;
}

/**
 * Allowance leases (docs/ARCHITECTURE.md "Allowance leases"): admitted growth is decided
 * from a share of the agent's allowance this replica holds in the shared ledger, and
 * written behind the answer. The lease is charged in the ledger as if spent, so no other
 * replica can spend it; every write of this replica's spends moves them from the lease to
 * reservations (the total charged unchanged) and tops the lease up from the room the
 * policies leave. A request the lease cannot cover, and a lease near its expiry, go
 * through the ledger as before.
 */
export class AllowanceLeases {
  readonly #o: AllowanceLeasesOptions;
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #idleMs: number;
  readonly #writeDelayMs: number;
  readonly #agents = new Map<string, AgentLease>();
  #timer: NodeJS.Timeout | undefined;
  /** Set by {@link close}: no lease is granted or topped up any more. */
  #closing = false;

  constructor(options: AllowanceLeasesOptions) {
    this.#o = options;
    this.#max = options.maxInstances ?? 8;
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#idleMs = options.idleMs ?? 2000;
    this.#writeDelayMs = options.writeDelayMs ?? 250;
  }

  /** Agents this replica holds a lease for or has spends to write for. */
  get agents(): number {
    return this.#agents.size;
  }

  /** Returns idle leases and retries failed writes every second until {@link close}. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tidy(), 1000);
    this.#timer.unref();
  }

  /**
   * What a decision may spend from the lease without a call: the agent's last known state
   * without this replica's lease, with the spends not written yet applied, and the
   * instances the lease has left (none while a round through the ledger is in flight).
   * Undefined when there is no lease (none, or near its expiry): decide through
   * {@link transact}.
   */
  local(agent: string): { readonly state: AgentLedgerState; readonly remaining: number } | undefined {
    const entry = this.#agents.get(agent);
    if (entry === undefined) return undefined;
    const known = this.#o.ledger.lastKnown(agent);
    const now = this.#o.clock.now();
    const lease = known && leaseOf(known, this.#o.holder, now);
    // Spent only in the first two thirds of its life: a lease is charged by others until it
    // expires by their clocks, and the last third absorbs clock skew.
    if (known === undefined || lease === undefined || lease.expiresAt - now.getTime() < this.#ttlMs / 3) return undefined;
    let state = withoutLease(known, this.#o.holder);
    let remaining = lease.instances;
    for (const s of [...entry.writing, ...entry.syncTaken, ...entry.pending]) {
      state = applyEpisodeRecord(state, s.record, this.#o.ledger.limits).state;
      remaining -= s.spent;
    }
    // While a round through the ledger is in flight it may resize the lease: decisions read
    // from here, but only what charges nothing new is spent.
    return { state, remaining: entry.syncing > 0 ? 0 : remaining };
  }

  /**
   * Decides with the lease when it can: the step runs on {@link local}'s state, and its
   * result is answered at once when it writes nothing, or when `spendOf` makes it a spend
   * the lease covers (`written` then says when it is written). Anything else goes through
   * {@link transact}, where `spendOf`'s room sizes the lease.
   */
  async decide<T>(
    agent: string,
    step: LedgerStep<T>,
    spendOf: (result: T) => LeaseSpend | undefined,
  ): Promise<{ readonly result: T; readonly written?: Promise<RecordOutcome | undefined> }> {
    const local = this.local(agent);
    if (local !== undefined) {
      const out = step(local.state);
      if (out.next === undefined) return { result: out.result };
      const spend = spendOf(out.result);
      if (spend !== undefined && spend.spent <= local.remaining) return { result: out.result, written: this.spend(agent, spend) };
    }
    return { result: await this.transact(agent, step, (r) => spendOf(r)?.room) };
  }

  /**
   * Spends from the lease what {@link local} allowed: answered now, written in the
   * background. Resolves with what the write found (whether the episode was new, the count
   * the mutating call held) once written; undefined when it could not be written before
   * {@link close}.
   */
  spend(agent: string, spend: LeaseSpend): Promise<RecordOutcome | undefined> {
    const entry = this.#entry(agent);
    entry.pending.push(spend);
    entry.lastUsed = this.#o.clock.monotonicMs();
    this.#o.metrics?.leaseDecisions.inc({ path: 'lease' });
    const written = new Promise<RecordOutcome | undefined>((resolve) => entry.waiters.set(spend, resolve));
    this.#flush(agent, entry);
    return written;
  }

  /**
   * Runs a decision through the ledger: the spends not written yet are written in the same
   * round, the step decides on the state without this replica's lease, and when `room`
   * says the decision admitted growth the lease is granted or topped up from it.
   */
  async transact<T>(agent: string, step: LedgerStep<T>, room: (result: T) => LeaseRoom | undefined): Promise<T> {
    const entry = this.#entry(agent);
    entry.syncing++;
    try {
      return await this.#serial(entry, () => this.#decide(agent, entry, step, room));
    } finally {
      entry.syncing--;
    }
  }

  /**
   * Runs `round` once the agent's earlier rounds that leave the lease out, and the write in
   * flight, have settled: a write that failed has put its spends back, so the next round
   * takes them and its step, which leaves the lease out of its view, still sees every spend
   * of it. Nothing new is charged to the lease meanwhile (`syncing`).
   */
  async #serial<T>(entry: AgentLease, round: () => Promise<T>): Promise<T> {
    const previous = entry.chain;
    let release = (): void => undefined;
    entry.chain = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await previous;
      // The write behind starts now rather than after its delay, and this round follows it.
      entry.hurry?.abort();
      await entry.flushing;
      return await round();
    } finally {
      release();
    }
  }

  async #decide<T>(agent: string, entry: AgentLease, step: LedgerStep<T>, room: (result: T) => LeaseRoom | undefined): Promise<T> {
    const taken = entry.pending.splice(0);
    entry.syncTaken.push(...taken);
    const settled = await this.#o.ledger
      .transact(agent, (shared) => {
        const now = this.#o.clock.now();
        const applied = this.#applySpends(shared, taken, now);
        const mine = leaseOf(applied.state, this.#o.holder, now);
        const view = withoutLease(applied.state, this.#o.holder);
        const out = step(view);
        const roomOf = room(out.result);
        const base = out.next ?? view;
        const granted = roomOf ? this.#grant(roomOf(base, now)) : 0;
        const instances = Math.max(mine?.instances ?? 0, granted);
        const unchanged = out.next === undefined && taken.length === 0 && granted <= (mine?.instances ?? 0);
        return {
          result: { value: out.result, isNew: applied.isNew, granted: granted > 0 },
          next: unchanged ? undefined : setLease(base, this.#o.holder, instances, now, this.#ttlMs, this.#o.ledger.limits),
        };
      })
      .catch((err: unknown) => {
        // Not written: the spends wait for the next write.
        entry.pending.unshift(...taken);
        this.#flush(agent, entry);
        throw err;
      })
      .finally(() => {
        entry.syncTaken = entry.syncTaken.filter((s) => !taken.includes(s));
      });
    this.#settle(entry, taken, settled.isNew);
    if (room(settled.value) !== undefined) this.#o.metrics?.leaseDecisions.inc({ path: 'ledger' });
    if (settled.granted) entry.lastUsed = this.#o.clock.monotonicMs();
    return settled.value;
  }

  /** Writes what is pending and returns the leases unused for the idle time; retries failed writes. */
  async tidy(): Promise<void> {
    const now = this.#o.clock.monotonicMs();
    const due: Promise<void>[] = [];
    for (const [agent, entry] of this.#agents) {
      if (entry.pending.length > 0 && entry.flushing === undefined) this.#flush(agent, entry);
      else if (entry.flushing === undefined && entry.syncing === 0 && now - entry.lastUsed >= this.#idleMs) due.push(this.#return(agent, entry));
    }
    await Promise.all(due);
  }

  /** Stops the timer, writes every pending spend and returns every lease: a stopping replica leaves nothing charged. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    // Each return runs after the rounds in flight for its agent, and writes what they left.
    await Promise.all([...this.#agents].map(([agent, entry]) => this.#return(agent, entry)));
    // A write started meanwhile (a spend that charged nothing) lands before closing ends,
    // its wait cut short.
    for (const entry of this.#agents.values()) entry.hurry?.abort();
    await Promise.all([...this.#agents.values()].map((entry) => entry.flushing));
    for (const entry of this.#agents.values()) this.#settle(entry, [...entry.writing, ...entry.syncTaken, ...entry.pending], undefined);
    this.#agents.clear();
  }

  #entry(agent: string): AgentLease {
    let entry = this.#agents.get(agent);
    if (entry === undefined) {
      entry = { pending: [], writing: [], syncTaken: [], waiters: new Map(), syncing: 0, flushing: undefined, hurry: undefined, chain: Promise.resolve(), lastUsed: this.#o.clock.monotonicMs(), writeFailed: false };
      this.#agents.set(agent, entry);
    }
    return entry;
  }

  #grant(room: number): number {
    if (this.#closing) return 0;
    return Math.max(0, Math.min(this.#max, Math.floor(room / 2)));
  }

  /** Applies spends in order; the lease goes down by what they spent, never the total charged. */
  #applySpends(shared: AgentLedgerState, spends: readonly LeaseSpend[], now: Date): { state: AgentLedgerState; isNew: RecordOutcome[] } {
    const limits = this.#o.ledger.limits;
    const spent = spends.reduce((total, s) => total + s.spent, 0);
    // Its own lease past its expiry is charged to the rate as anyone's is, less what this
    // write moves into reservations: spends not written yet (and any part never spent)
    // stay charged, since this replica may stop before it writes them.
    const own = shared.leases?.find((l) => l.holder === this.#o.holder);
    const expired = own !== undefined && own.expiresAt <= now.getTime();
    let state = expire(expired ? spendLease(shared, this.#o.holder, spent) : shared, now, limits);
    const isNew: RecordOutcome[] = [];
    for (const s of spends) {
      const out = applyEpisodeRecord(state, s.record, limits);
      state = out.state;
      isNew.push({ isNew: out.isNew, charged: out.charged, held: out.held, sums: out.sums });
    }
    return { state: expired ? state : spendLease(state, this.#o.holder, spent), isNew };
  }

  /**
   * Starts writing the agent's pending spends unless a write is in flight (it starts the next
   * one). The write waits `writeDelayMs` first, so that a burst's spends share one PUT.
   */
  #flush(agent: string, entry: AgentLease): void {
    if (entry.flushing !== undefined) return;
    const hurry = new AbortController();
    entry.hurry = hurry;
    // Closing, nothing waits: the timer would not hold the process open for the write.
    const delayed =
      this.#writeDelayMs > 0 && !this.#closing
        ? (this.#o.wait ?? timerWait)(this.#writeDelayMs, hurry.signal).catch(() => undefined)
        : Promise.resolve();
    entry.flushing = delayed.then(() => {
      entry.hurry = undefined;
      return this.#write(agent, entry);
    }).finally(() => {
      entry.flushing = undefined;
      // A round waiting for this write takes what is pending in its own.
      if (entry.pending.length > 0 && !entry.writeFailed && entry.syncing === 0) this.#flush(agent, entry);
    });
  }

  /** One write behind: the spends, the lease lowered by them and topped up from the latest spend's room. */
  async #write(agent: string, entry: AgentLease): Promise<void> {
    const taken = entry.pending.splice(0);
    if (taken.length === 0) return;
    entry.writing = taken;
    const room = taken[taken.length - 1]?.room;
    try {
      const isNew = await this.#o.ledger.transact(agent, (shared) => {
        const now = this.#o.clock.now();
        const applied = this.#applySpends(shared, taken, now);
        const mine = leaseOf(applied.state, this.#o.holder, now);
        const granted = room ? this.#grant(room(withoutLease(applied.state, this.#o.holder), now)) : 0;
        const instances = Math.max(mine?.instances ?? 0, granted);
        return { result: applied.isNew, next: setLease(applied.state, this.#o.holder, instances, now, this.#ttlMs, this.#o.ledger.limits) };
      });
      entry.writeFailed = false;
      this.#settle(entry, taken, isNew);
      this.#o.metrics?.leaseWrites.inc({ outcome: 'written' });
    } catch (err) {
      // Answered already: never dropped. Charged meanwhile by the lease, which expires into the rate if this never lands.
      entry.pending.unshift(...taken);
      entry.writeFailed = true;
      this.#o.metrics?.leaseWrites.inc({ outcome: 'error' });
      this.#o.logger.warn({ err, agent, spends: taken.length }, 'could not write growth admitted from an allowance lease; it is tried again');
    } finally {
      entry.writing = [];
    }
  }

  /** Writes what is pending and gives the lease back. */
  async #return(agent: string, entry: AgentLease): Promise<void> {
    entry.syncing++;
    try {
      await this.#serial(entry, () => this.#giveBack(agent, entry));
    } finally {
      entry.syncing--;
    }
  }

  async #giveBack(agent: string, entry: AgentLease): Promise<void> {
    let taken: LeaseSpend[] = [];
    try {
      taken = entry.pending.splice(0);
      entry.syncTaken.push(...taken);
      const known = this.#o.ledger.lastKnown(agent);
      // Only when no round of this replica is in flight: one could still grant a lease.
      const alone = entry.syncing === 1 && entry.flushing === undefined;
      if (alone && taken.length === 0 && known !== undefined && known.leases?.some((l) => l.holder === this.#o.holder) !== true) {
        // Nothing to write and nothing held: forgetting the agent costs no call.
        this.#agents.delete(agent);
        return;
      }
      const isNew = await this.#o.ledger.transact(agent, (shared) => {
        const now = this.#o.clock.now();
        const applied = this.#applySpends(shared, taken, now);
        const next = withoutLease(applied.state, this.#o.holder);
        return { result: applied.isNew, next: next === shared ? undefined : next };
      });
      this.#settle(entry, taken, isNew);
      if (entry.pending.length === 0 && entry.syncing === 1 && entry.flushing === undefined) this.#agents.delete(agent);
    } catch (err) {
      entry.pending.unshift(...taken);
      this.#o.logger.warn({ err, agent }, 'could not return an allowance lease; it is tried again, and expires into the rate if it never is');
    } finally {
      entry.syncTaken = entry.syncTaken.filter((s) => !taken.includes(s));
    }
  }

  #settle(entry: AgentLease, spends: readonly LeaseSpend[], isNew: readonly RecordOutcome[] | undefined): void {
    spends.forEach((s, i) => {
      entry.waiters.get(s)?.(isNew?.[i]);
      entry.waiters.delete(s);
    });
  }
}
