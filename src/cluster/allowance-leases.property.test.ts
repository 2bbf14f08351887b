import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { applyEpisodeRecord, type EpisodeRecord } from '../admission/episode-record.ts';
import type { Clock } from '../clock.ts';
import { type AgentLedgerState, emptyState, expire, type LedgerLimits, rateUsed } from '../core/ledger-state.ts';
import { growthRecord } from '../../test/helpers/ledger-state-fixtures.ts';
import { AllowanceLeases, type LeasableLedger, type LeaseRoom, type LeaseSpend } from './allowance-leases.ts';
import { type LedgerStep, TransactionalLedger } from './ledger.ts';

/**
 * Allowance leases against a full recomputation: guard replicas share one ledger whose
 * transactions land in any order the test picks (each one atomically on the state it
 * finds, as a compare-and-swap retried until it wins does), each replica knowing only the
 * state its own last transaction saw. After random sequences of requests, deliveries,
 * idle returns, forgotten caches, healthy time, stalls past lease expiry, replica crashes and
 * (in the second property) write delays that end or are cut short, the
 * growth admitted in any rate window never exceeds the limit, what is stored always
 * charges at least what was admitted and not yet charged elsewhere, and once every
 * replica stops nothing admitted is missing and no lease is left behind.
 */

const AGENT = 'system:serviceaccount:agents:agent-1';
const CAP = 6;
const WINDOW_MS = 10 * 60_000;
const TTL_MS = 30_000;
const LIMITS: LedgerLimits = { windowMs: 60 * 60_000, maxWindowMs: 60 * 60_000, reservationTtlMs: 60 * 60_000 };

class ManualClock implements Clock {
  ms = Date.UTC(2026, 0, 1, 12, 0, 0);
  now(): Date {
    return new Date(this.ms);
  }
  monotonicMs(): number {
    return this.ms;
  }
}

/**
 * The wait before a write behind, as the test decides: it ends when the test says the
 * delay is over (healthy time, or an `elapse`), or at once when the replica cuts it short,
 * as the timer it stands for does.
 */
class ManualWaits {
  readonly #pending = new Set<() => void>();
  readonly wait = (_ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        this.#pending.delete(done);
        resolve();
      };
      this.#pending.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  /** Ends every wait begun so far. */
  elapse(): void {
    for (const done of [...this.#pending]) done();
  }
}

/** One shared state; transactions wait in `queue` until the test delivers them, in any order across replicas. */
class SharedLedger {
  state: AgentLedgerState = emptyState();
  readonly queue: { readonly replica: ReplicaLedger; run(): void }[] = [];

  /** Delivers the oldest transaction of the replica that sent the `index`-th one: each replica's client sends its own in order. */
  deliver(index: number): void {
    const chosen = this.queue[index % this.queue.length];
    const first = this.queue.findIndex((tx) => tx.replica === chosen?.replica);
    const [tx] = this.queue.splice(first, 1);
    tx?.run();
  }
}

/** One replica's ledger client: it knows the state its own last transaction saw. */
class ReplicaLedger extends TransactionalLedger implements LeasableLedger {
  known: AgentLedgerState | undefined;
  /** Set when its replica crashes: what it would send never reaches the API server. */
  crashed = false;
  readonly shared: SharedLedger;
  constructor(shared: SharedLedger) {
    super(LIMITS, { maxEpisodes: 0 });
    this.shared = shared;
  }
  lastKnown(): AgentLedgerState | undefined {
    return this.known;
  }
  transact<T>(_agent: string, step: LedgerStep<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      if (this.crashed) return;
      this.shared.queue.push({
        replica: this,
        run: () => {
          try {
            const { result, next } = step(this.shared.state);
            if (next !== undefined) this.shared.state = next;
            this.known = this.shared.state;
            resolve(result);
          } catch (err) {
            reject(err);
          }
        },
      });
    });
  }
}

interface Admission {
  readonly key: string;
  readonly instances: number;
  readonly at: number;
  readonly replica: number;
}

interface Decided {
  readonly admitted: boolean;
  readonly record: EpisodeRecord | undefined;
  readonly room: LeaseRoom;
  /** What its reservation newly charged: 0 for a growth reserved already. */
  readonly charged: number;
}

type Op =
  | { readonly type: 'request'; readonly replica: number; readonly instances: number; readonly repeat: number }
  | { readonly type: 'deliver'; readonly index: number }
  | { readonly type: 'tick'; readonly ms: number }
  | { readonly type: 'stall'; readonly ms: number }
  | { readonly type: 'tidy'; readonly replica: number }
  | { readonly type: 'forget'; readonly replica: number }
  | { readonly type: 'crash'; readonly replica: number }
  | { readonly type: 'elapse' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ type: fc.constant('request' as const), replica: fc.nat(2), instances: fc.integer({ min: 1, max: 3 }), repeat: fc.oneof(fc.constant(0), fc.nat(30)) }) },
  { weight: 6, arbitrary: fc.record({ type: fc.constant('deliver' as const), index: fc.nat(20) }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('tick' as const), ms: fc.integer({ min: 100, max: 20_000 }) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('stall' as const), ms: fc.integer({ min: 100, max: 40_000 }) }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('tidy' as const), replica: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('forget' as const), replica: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('crash' as const), replica: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('elapse' as const) }) },
);

const room: LeaseRoom = (state, now) => CAP - rateUsed(state, WINDOW_MS, now);

/**
 * Runs the operations. `delayed`: writes behind wait for their delay (ended by healthy
 * time or an `elapse`, or cut short by the replica), as in a running guard; otherwise
 * they start at once.
 */
async function run(ops: readonly Op[], delayed = false): Promise<void> {
  const clock = new ManualClock();
  const shared = new SharedLedger();
  const logger = pino({ level: 'silent' });
  let generation = 0;
  const replica = () => {
    const ledger = new ReplicaLedger(shared);
    // Each replica's own timers: a crashed replica's never end.
    const waits = new ManualWaits();
    const delay = delayed ? { writeDelayMs: 250, wait: waits.wait } : { writeDelayMs: 0 };
    const leases = new AllowanceLeases({ ledger, holder: `guard-${generation++}`, clock, logger, maxInstances: 4, ttlMs: TTL_MS, idleMs: 1000, ...delay });
    return { ledger, leases, waits, crashed: false };
  };
  const elapse = () => {
    for (const r of replicas) r.waits.elapse();
  };
  const replicas = [replica(), replica(), replica()];
  const admitted: Admission[] = [];
  let crashes = 0;
  let stalls = 0;
  let n = 0;
  const sizes = new Map<string, number>();
  const settle = () => new Promise((r) => setImmediate(r));

  const step =
    (key: string, instances: number): LedgerStep<Decided> =>
    (state) => {
      const now = clock.now();
      const admit = rateUsed(state, WINDOW_MS, now) + instances <= CAP;
      if (!admit) return { result: { admitted: false, record: undefined, room, charged: 0 }, next: undefined };
      const record = growthRecord(key, instances, now);
      const applied = applyEpisodeRecord(state, record, LIMITS);
      return { result: { admitted: true, record, room, charged: applied.charged }, next: applied.state };
    };

  for (const op of ops) {
    switch (op.type) {
      case 'request': {
        const r = replicas[op.replica];
        if (r === undefined) break;
        // A repeat asks for a growth asked before (an agent's retry): the same key and size.
        const earlier = op.repeat && n > 0 ? sizes.get(`k${op.repeat % n}`) : undefined;
        const key = earlier === undefined ? `k${n++}` : `k${op.repeat % (n === 0 ? 1 : n)}`;
        const instances = earlier ?? op.instances;
        sizes.set(key, instances);
        const index = op.replica;
        const spendOf = (d: Decided): LeaseSpend | undefined =>
          d.record && d.admitted ? { record: d.record, spent: d.charged, room: d.room } : undefined;
        void r.leases.decide(AGENT, step(key, instances), spendOf).then(({ result }) => {
          // A crashed replica's answers never reached the API server. One key is one growth
          // (a workload from one count to another): admitted twice, it adds its instances once.
          if (result.admitted && !r.crashed && result.record && !admitted.some((a) => a.key === key)) {
            admitted.push({ key, instances, at: result.record.at.getTime(), replica: index });
          }
        });
        break;
      }
      case 'deliver':
        if (shared.queue.length > 0) shared.deliver(op.index);
        break;
      case 'tick':
        // Healthy time: each replica's timer runs every second and the API server answers.
        for (let left = op.ms; left > 0; left -= 1000) {
          clock.ms += Math.min(1000, left);
          elapse();
          for (const r of replicas) void r.leases.tidy();
          await settle();
          for (let i = 0; shared.queue.length > 0 && i < 100; i++) {
            shared.deliver(0);
            await settle();
          }
        }
        break;
      case 'stall':
        // Time passes with no timer run and no answer: leases may expire before they are given back.
        stalls++;
        clock.ms += op.ms;
        break;
      case 'tidy':
        void replicas[op.replica]?.leases.tidy();
        break;
      case 'elapse':
        // The write delay is over, with no other time passing (it is far shorter than a tick).
        elapse();
        break;
      case 'forget': {
        const r = replicas[op.replica];
        if (r) r.ledger.known = undefined;
        break;
      }
      case 'crash': {
        const r = replicas[op.replica];
        if (r === undefined) break;
        r.crashed = true;
        r.ledger.crashed = true;
        crashes++;
        // What it had in flight never lands, and it sends nothing more.
        for (let i = shared.queue.length - 1; i >= 0; i--) if (shared.queue[i]?.replica === r.ledger) shared.queue.splice(i, 1);
        replicas[op.replica] = replica();
        break;
      }
    }
    await settle();
    checkWindows(admitted, WINDOW_MS, CAP);
  }

  // Stop every replica: deliver until nothing is left in flight.
  const closing = Promise.all(replicas.map((r) => r.leases.close()));
  let done = false;
  void closing.then(() => {
    done = true;
  });
  for (let i = 0; !done && i < 10_000; i++) {
    if (shared.queue.length > 0) shared.deliver(0);
    // No time passes: closing must not wait for a write delay to end.
    await settle();
  }
  expect(done).toBe(true);
  checkWindows(admitted, WINDOW_MS, CAP);

  // What is stored charges at least the growth admitted in the window ending now.
  const recent = admitted.filter((a) => a.at >= clock.ms - WINDOW_MS).reduce((s, a) => s + a.instances, 0);
  // (as every reader sees it: an expired lease is charged by whoever reads it next)
  expect(rateUsed(expire(shared.state, clock.now(), LIMITS), WINDOW_MS, clock.now())).toBeGreaterThanOrEqual(recent);

  const reserved = new Map(shared.state.reservations.map((r) => [r.key, r.addedInstances]));
  // Everything a live replica admitted is stored; a crashed one's unwritten growth was charged by its lease's expiry.
  for (const a of admitted) {
    if (crashes === 0) expect(reserved.get(a.key)).toBe(a.instances);
  }
  // Leases given back in time charge nothing once their holders stop.
  if (crashes === 0 && stalls === 0) {
    expect(shared.state.leases).toBeUndefined();
    expect(rateUsed(shared.state, 24 * 60 * 60_000, clock.now())).toBe(admitted.reduce((s, a) => s + a.instances, 0));
  }
}

/** For every admission, the growth admitted in the window ending at it stays within the cap. */
function checkWindows(admitted: readonly Admission[], windowMs: number, cap: number): void {
  for (const a of admitted) {
    let sum = 0;
    for (const b of admitted) if (b.at > a.at - windowMs && b.at <= a.at) sum += b.instances;
    expect(sum, `growth admitted in the window ending at ${new Date(a.at).toISOString()}`).toBeLessThanOrEqual(cap);
  }
}

describe('allowance leases: cases found by the property below', () => {
  // Two spends from a lease, the second waiting behind the first's write; the lease expires
  // before the first lands, and its holder stops while the second is still in flight.
  const expiresUnderWrites: readonly Op[] = [
    { type: 'request', replica: 2, instances: 1, repeat: 0 },
    { type: 'deliver', index: 0 },
    { type: 'request', replica: 2, instances: 1, repeat: 0 },
    { type: 'stall', ms: 100 },
    { type: 'request', replica: 2, instances: 1, repeat: 0 },
    { type: 'stall', ms: 29_900 },
  ];

  it('a stopping replica writes a spend still waiting behind a write in flight', async () => {
    await run([...expiresUnderWrites, { type: 'request', replica: 0, instances: 1, repeat: 0 }]);
  });
});

describe('allowance leases against a full recomputation', () => {
  it('never admit more than the rate allows in any window, lose nothing admitted, and leave no lease behind', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 80 }), async (ops) => {
        await run(ops);
      }),
      { numRuns: 2000 },
    );
  });

  it('the same, with each write behind waiting for its delay unless cut short', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 80 }), async (ops) => {
        await run(ops, true);
      }),
      { numRuns: 2000 },
    );
  });
});
