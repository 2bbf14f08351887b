import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { AgentIdentity } from '../core/types.ts';
import type { ClusterView } from './cluster-view.ts';
import type { Ledger, LedgerMetrics } from './ledger.ts';
import { awaitsHousekeeping, housekept } from './ledger-housekeeping.ts';
import { LruMap } from './lru-map.ts';

/** Options of the background housekeeper. */
export interface LedgerHousekeeperOptions {
  readonly ledger: Ledger;
  readonly view: ClusterView;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Time between rounds (default 5 s): well inside the reservations' timeout, so confirmed growth is charged before it could be released. */
  readonly intervalMs?: number | undefined;
  /** Agents remembered between rounds at most (default 10 000; least recently decided out). */
  readonly maxAgents?: number | undefined;
  readonly metrics?: LedgerMetrics | undefined;
}

/**
 * Writes an agent's ledger housekeeping (confirmations of reservations the view now shows,
 * expiry, forgetting deleted workloads) in the background, one agent at a time, so that a
 * decision never waits for a write it did not need: decisions read the same housekeeping
 * ({@link housekept}) without writing it. An agent stays on the list while its state holds
 * reservations the view has not shown yet.
 */
export class LedgerHousekeeper {
  readonly #options: LedgerHousekeeperOptions;
  /** By agent name: the identity, and the touch that put it there (a later touch keeps it for the next round). */
  readonly #agents: LruMap<{ readonly agent: AgentIdentity; readonly touch: number }>;
  #touches = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(options: LedgerHousekeeperOptions) {
    this.#options = options;
    this.#agents = new LruMap(options.maxAgents ?? 10_000);
  }

  /** Agents waiting for a round. */
  get pending(): number {
    return this.#agents.size;
  }

  /** Notes that a decision read or wrote the agent's state. Cheap: called on the request path. */
  touched(agent: AgentIdentity): void {
    this.#agents.set(agent.username, { agent, touch: ++this.#touches });
  }

  /** Runs a round every interval until {@link stop}. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.runOnce(), this.#options.intervalMs ?? 5000);
    this.#timer.unref();
  }

  /** Stops the timer and waits for the round in flight, so that its write is not cut short. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One round over every agent on the list; a round already in flight is joined, not doubled. */
  runOnce(): Promise<void> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #round(): Promise<void> {
    const agents = [...this.#agents.entries()];
    for (const [name, { agent, touch }] of agents) {
      try {
        const waiting = await this.#housekeep(agent);
        // Touched again during the round: kept for the next one.
        if (!waiting && this.#agents.peek(name)?.touch === touch) this.#agents.delete(name);
        this.#options.metrics?.housekeeping.inc({ outcome: 'done' });
      } catch (err) {
        this.#options.metrics?.housekeeping.inc({ outcome: 'error' });
        this.#options.logger.warn({ err, agent: name }, 'ledger housekeeping failed; it is tried again next round');
      }
    }
  }

  #housekeep(agent: AgentIdentity): Promise<boolean> {
    const { ledger, view, clock } = this.#options;
    return ledger.transact(agent.username, (state) => {
      const next = housekept(state, agent, view, clock.now(), ledger.limits);
      return { result: awaitsHousekeeping(next), next: next === state ? undefined : next };
    });
  }
}
