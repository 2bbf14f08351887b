import type { Logger } from 'pino';
import { pino } from 'pino';
import type { Clock } from '../clock.ts';
import type { WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import type { OwnerFacts, PodFacts } from './kube-snapshot.ts';

/**
 * Losses, from the view (DESIGN.md "loss"): a Pod that disappears or fails while its
 * owner's desired count did not drop, counted once per Pod UID. Most losses never pass
 * through admission (kubelet evictions, preemption, node loss, other users' deletes), so
 * they are read from the watch: a pod turning `Failed`, a pod getting a deletionTimestamp
 * (the moment someone decided it goes; the DELETED event comes a grace period later),
 * a pod deleted outright.
 *
 * Not losses: a pod of a `Succeeded` phase (a Job's completion); a pod whose owner's count
 * dropped shortly before (an HPA scale-down, a rollout retiring its old ReplicaSet: each
 * drop of n excuses n pod ends within the grace period); a pod whose owner is gone, being
 * deleted or finished (a Job that completed stops its remaining pods); a StatefulSet pod
 * of an old revision or a DaemonSet pod during a rollout.
 *
 * Watches of different resources are separate streams: a pod's deletion may arrive before
 * its ReplicaSet's scale-down. So each pod end waits `settleMs` before it is judged,
 * against the count drops seen from `graceMs` before it to `settleMs` after it.
 *
 * Separately, every lowered count is reported with the field manager that lowered it,
 * read from `metadata.managedFields`, for the caller to attribute (the agent, the HPA,
 * someone else: a loss).
 */

/** Why a pod ended. */
export type PodEndReason = 'failed' | 'deleted';

/** A lost instance. */
export interface LossEvent {
  readonly podUid: string;
  readonly namespace: string;
  readonly name: string;
  readonly reason: PodEndReason;
  /** The pod's controller, when the view knows its kind; undefined for a bare pod. */
  readonly ownerUid: string | undefined;
  /** The workload the pod counted toward (its top owner, or the bare pod itself), as it was when the pod ended. */
  readonly topOwner: WorkloadSnapshot | undefined;
  readonly serviceAccount: string;
  /** When the end was seen, on the clock's monotonic scale. */
  readonly atMs: number;
  readonly at: Date;
}

/** A workload's desired count went down. */
export interface CountLoweredEvent {
  readonly uid: string;
  readonly ref: WorkloadRef;
  /** Set for a controlled workload (a Deployment's ReplicaSet): its controller lowered it, look at the top owner's event. */
  readonly controllerUid: string | undefined;
  readonly from: number;
  readonly to: number;
  /** The field manager owning the count field with the latest time; undefined without managedFields. */
  readonly manager: string | undefined;
  /** `scale` when it was written through the scale subresource (kubectl scale, the HPA). */
  readonly subresource: string | undefined;
  /** `Update` or `Apply`. */
  readonly operation: string | undefined;
  /** That managedFields entry's time (second resolution). */
  readonly fieldTime: string | undefined;
  readonly at: Date;
}

/** A count drop, and how many pod ends it still excuses. */
export interface CountDrop {
  readonly atMs: number;
  readonly remaining: number;
}

/** A pod end waiting to be judged. */
export interface PodEnd {
  readonly reason: PodEndReason;
  readonly atMs: number;
  readonly ownerUid: string | undefined;
  readonly revision: string | undefined;
}

/** The verdict on one pod end. */
export type Classification =
  | { readonly loss: true }
  | {
      readonly loss: false;
      readonly why: 'owner-gone' | 'owner-deleting' | 'owner-finished' | 'rollout' | 'count-lowered';
      /** The index of the drop that excused it. */
      readonly drop?: number | undefined;
    };

export interface LossWindows {
  /** How long after a count drop a pod end is still that drop's doing. */
  readonly graceMs: number;
  /** How long a pod end waits for its owner's events on the other watch. */
  readonly settleMs: number;
}

/** Whether a pod has already ended: a later change of it is not a new end. */
function ended(p: PodFacts): boolean {
  return p.phase === 'Succeeded' || p.phase === 'Failed' || p.deleting;
}

/**
 * Whether going from `prev` to `next` ends the pod, and how. `next` is the pod's last
 * state when `deleted` (the DELETED event's object, or `prev` when a re-list found it
 * gone). A pod that had already ended (failed, succeeded, being deleted) does not end twice.
 */
export function podEnd(prev: PodFacts | undefined, next: PodFacts, deleted: boolean): PodEndReason | undefined {
  if (prev && ended(prev)) return undefined;
  if (next.phase === 'Succeeded') return undefined;
  if (next.phase === 'Failed') return 'failed';
  if (deleted || next.deleting) return 'deleted';
  return undefined;
}

/** The desired count loss detection compares: 0 for a finished or deleted owner. */
export function effectiveCount(owner: OwnerFacts): number {
  return owner.terminal || owner.deleting ? 0 : owner.steady;
}

/**
 * Judges one pod end given its owner as it is now and the owner's recent count drops
 * (in time order, from `start` on). Pure: the caller consumes the drop it names.
 */
export function classifyPodEnd(
  end: PodEnd,
  owner: OwnerFacts | undefined,
  drops: readonly CountDrop[],
  windows: LossWindows,
  start = 0,
): Classification {
  if (end.ownerUid === undefined) return { loss: true };
  if (!owner) return { loss: false, why: 'owner-gone' };
  if (owner.deleting) return { loss: false, why: 'owner-deleting' };
  if (owner.terminal) return { loss: false, why: 'owner-finished' };
  if (end.reason === 'deleted') {
    if (owner.rollingOut) return { loss: false, why: 'rollout' };
    if (end.revision !== undefined && owner.revision !== undefined && end.revision !== owner.revision) {
      return { loss: false, why: 'rollout' };
    }
  }
  const from = end.atMs - windows.graceMs;
  const to = end.atMs + windows.settleMs;
  for (let i = start; i < drops.length; i++) {
    const d = drops[i];
    if (d === undefined || d.atMs > to) break;
    if (d.remaining > 0 && d.atMs >= from) return { loss: false, why: 'count-lowered', drop: i };
  }
  return { loss: true };
}

/** The managedFields entry that last wrote a count field. */
export interface FieldWriter {
  readonly manager: string | undefined;
  readonly operation: string | undefined;
  readonly subresource: string | undefined;
  readonly time: string | undefined;
}

/**
 * Who owns any of `paths` (e.g. `[['spec', 'replicas']]`) in `managedFields` with the
 * latest time, `scale` subresource entries included (since Kubernetes 1.22 they are
 * recorded against the parent's field paths). Times have second resolution; on a tie the
 * later entry wins.
 */
export function countWriter(managedFields: unknown, paths: readonly (readonly string[])[]): FieldWriter | undefined {
  if (!Array.isArray(managedFields)) return undefined;
  let best: Record<string, unknown> | undefined;
  let bestTime = Number.NEGATIVE_INFINITY;
  for (const entry of managedFields) {
    if (typeof entry !== 'object' || entry === null) continue;
    const e = entry as Record<string, unknown>;
    if (!paths.some((p) => ownsPath(e.fieldsV1, p))) continue;
    const parsed = typeof e.time === 'string' ? Date.parse(e.time) : Number.NaN;
    const time = Number.isNaN(parsed) ? Number.NEGATIVE_INFINITY : parsed;
    if (time >= bestTime) {
      best = e;
      bestTime = time;
    }
  }
  if (!best) return undefined;
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  return {
    manager: text(best.manager),
    operation: text(best.operation),
    subresource: text(best.subresource),
    time: text(best.time),
  };
}

function ownsPath(fields: unknown, path: readonly string[]): boolean {
  let cur = fields;
  for (const segment of path) {
    if (typeof cur !== 'object' || cur === null) return false;
    cur = (cur as Record<string, unknown>)[`f:${segment}`];
  }
  return typeof cur === 'object' && cur !== null;
}

/** What the detector asks the view. */
export interface LossLookups {
  /** The owner's facts now; undefined when the view no longer has it. */
  owner(uid: string): OwnerFacts | undefined;
  /** The workload a pod with this controller counts toward. */
  topOwner(ownerUid: string): WorkloadSnapshot | undefined;
}

export interface LossDetectorOptions {
  readonly clock: Clock;
  readonly lookups: LossLookups;
  readonly logger?: Logger | undefined;
  /** Default 60 s: a controller acts on a count drop within seconds, but a large scale-down takes a while. */
  readonly graceMs?: number | undefined;
  /** Default 5 s. */
  readonly settleMs?: number | undefined;
  /** How many recent events to keep for {@link LossDetector.recentLosses}; default 100. */
  readonly keep?: number | undefined;
}

interface Pending {
  readonly end: PodEnd;
  readonly podUid: string;
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount: string;
  readonly topOwner: WorkloadSnapshot | undefined;
  readonly at: Date;
}

/** Watches the view's pod and owner changes for losses and lowered counts. */
export class LossDetector {
  readonly #clock: Clock;
  readonly #lookups: LossLookups;
  readonly #logger: Logger;
  readonly #windows: LossWindows;
  readonly #keep: number;
  readonly #lossListeners = new Set<(e: LossEvent) => void>();
  readonly #loweredListeners = new Set<(e: CountLoweredEvent) => void>();
  readonly #recentLosses: LossEvent[] = [];
  readonly #recentLowered: CountLoweredEvent[] = [];
  /** Each owner's count drops in time order, from `head` on. */
  readonly #drops = new Map<string, DropList>();
  readonly #counted = new Set<string>();
  /** Pod ends waiting out their settle time, in time order, from {@link #head} on. */
  #pending: Pending[] = [];
  /** Where the ends not judged yet begin: a queue taken from the front without moving the rest. */
  #head = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #changesSincePrune = 0;

  constructor(options: LossDetectorOptions) {
    this.#clock = options.clock;
    this.#lookups = options.lookups;
    this.#logger = options.logger ?? pino({ enabled: false });
    this.#windows = { graceMs: options.graceMs ?? 60_000, settleMs: options.settleMs ?? 5_000 };
    this.#keep = options.keep ?? 100;
  }

  /** Calls `listener` for each loss; returns a function that unsubscribes. */
  onLoss(listener: (event: LossEvent) => void): () => void {
    this.#lossListeners.add(listener);
    return () => this.#lossListeners.delete(listener);
  }

  /** Calls `listener` for each lowered count; returns a function that unsubscribes. */
  onCountLowered(listener: (event: CountLoweredEvent) => void): () => void {
    this.#loweredListeners.add(listener);
    return () => this.#loweredListeners.delete(listener);
  }

  /** The last losses, oldest first. */
  recentLosses(): readonly LossEvent[] {
    return [...this.#recentLosses];
  }

  /** The last lowered counts, oldest first. */
  recentCountsLowered(): readonly CountLoweredEvent[] {
    return [...this.#recentLowered];
  }

  /** Pod ends seen and not judged yet. */
  get pendingEnds(): number {
    return this.#pending.length - this.#head;
  }

  /** An owner changed (`after` undefined: deleted). Records a drop of its effective count. */
  ownerChanged(uid: string, before: OwnerFacts | undefined, after: OwnerFacts | undefined): void {
    if (!before || !after) return;
    const lowered = effectiveCount(before) - effectiveCount(after);
    if (lowered <= 0) return;
    const now = this.#clock.monotonicMs();
    const drop = { atMs: now, remaining: lowered };
    const list = this.#drops.get(uid);
    if (list === undefined) this.#drops.set(uid, { items: [drop], head: 0 });
    else {
      list.items.push(drop);
      trimDrops(list, this.#horizon(now));
    }
    if (++this.#changesSincePrune >= 1000) this.#prune(now);
  }

  /** A workload's count was lowered; `writer` from {@link countWriter}. */
  countLowered(
    uid: string,
    ref: WorkloadRef,
    from: number,
    to: number,
    writer: FieldWriter | undefined,
    controllerUid?: string | undefined,
  ): void {
    const event: CountLoweredEvent = {
      uid,
      ref,
      controllerUid,
      from,
      to,
      manager: writer?.manager,
      subresource: writer?.subresource,
      operation: writer?.operation,
      fieldTime: writer?.time,
      at: this.#clock.now(),
    };
    remember(this.#recentLowered, event, this.#keep);
    for (const listener of this.#loweredListeners) this.#call(listener, event);
  }

  /**
   * A pod changed. `next` is its new state, or its last one when `deleted`; `bare` is a
   * bare pod's own snapshot (the workload it is). Call only once the view has synced:
   * ends seen in the first list have no history to judge them by.
   */
  podChanged(
    namespace: string,
    name: string,
    prev: PodFacts | undefined,
    next: PodFacts,
    deleted: boolean,
    bare?: WorkloadSnapshot | undefined,
  ): void {
    if (deleted) this.#counted.delete(next.uid);
    const reason = podEnd(prev, next, deleted);
    if (reason === undefined || this.#stopped) return;
    // Once per UID, whatever order the watch and a re-list report it in.
    if (this.#counted.has(next.uid)) return;
    if (!deleted) this.#counted.add(next.uid);
    const atMs = this.#clock.monotonicMs();
    this.#pending.push({
      end: { reason, atMs, ownerUid: next.ownerUid, revision: next.revision },
      podUid: next.uid,
      namespace,
      name,
      serviceAccount: next.serviceAccount,
      topOwner: next.ownerUid === undefined ? bare : this.#lookups.topOwner(next.ownerUid),
      at: this.#clock.now(),
    });
    this.#schedule();
  }

  /** Judges the pod ends whose settle time has passed (all of them with `all`). */
  flush(all = false): void {
    const now = this.#clock.monotonicMs();
    // Ends are queued in time order, so the due ones come first: taking them costs what is
    // due, where filtering the queue cost every end still settling, on each timer. The
    // judged front is dropped only once it is half the array.
    let n = this.#head;
    if (all) n = this.#pending.length;
    // (`?? now` only satisfies the index check: below the length an end is always there.)
    else while (n < this.#pending.length && (this.#pending[n]?.end.atMs ?? now) + this.#windows.settleMs <= now) n++;
    if (n === this.#head) return;
    const due = this.#pending.slice(this.#head, n);
    this.#head = n;
    if (this.#head * 2 >= this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
    for (const p of due) this.#judge(p);
  }

  /** Stops the settle timer; ends not judged yet are dropped. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = [];
    this.#head = 0;
  }

  #judge(p: Pending): void {
    const ownerUid = p.end.ownerUid;
    const drops = ownerUid === undefined ? undefined : this.#drops.get(ownerUid);
    const owner = ownerUid === undefined ? undefined : this.#lookups.owner(ownerUid);
    const verdict = classifyPodEnd(p.end, owner, drops?.items ?? [], this.#windows, drops?.head);
    if (!verdict.loss) {
      if (verdict.drop !== undefined && drops !== undefined) {
        const used = drops.items[verdict.drop];
        if (used) {
          // The list is this detector's own: changed in place, not copied per pod end.
          drops.items[verdict.drop] = { atMs: used.atMs, remaining: used.remaining - 1 };
          // Ends are judged in time order: no end after this one can use a drop from
          // before this one's window, whenever the judging happens.
          trimDrops(drops, p.end.atMs - this.#windows.graceMs);
        }
      }
      this.#logger.debug({ pod: `${p.namespace}/${p.name}`, why: verdict.why }, 'pod end is not a loss');
      return;
    }
    const event: LossEvent = {
      podUid: p.podUid,
      namespace: p.namespace,
      name: p.name,
      reason: p.end.reason,
      ownerUid,
      topOwner: p.topOwner,
      serviceAccount: p.serviceAccount,
      atMs: p.end.atMs,
      at: p.at,
    };
    remember(this.#recentLosses, event, this.#keep);
    this.#logger.info({ pod: `${p.namespace}/${p.name}`, reason: p.end.reason }, 'instance lost');
    for (const listener of this.#lossListeners) this.#call(listener, event);
  }

  #schedule(): void {
    if (this.#timer || this.#stopped) return;
    const first = this.#pending[this.#head];
    if (!first) return;
    const wait = Math.max(0, first.end.atMs + this.#windows.settleMs - this.#clock.monotonicMs());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush();
      this.#schedule();
    }, wait + 1);
    this.#timer.unref();
  }

  /**
   * Drops older than this are of no use to any pod end still to be judged: an end waiting
   * out its settle time (the oldest is first in the queue) or one to come. Read from the
   * queue rather than from the clock alone, so that ends judged late (a busy event loop, a
   * delayed timer) keep the drops their own window covers.
   */
  #horizon(now: number): number {
    const oldest = this.#pending[this.#head];
    const windowStart = now - this.#windows.graceMs - this.#windows.settleMs;
    return oldest === undefined ? windowStart : Math.min(windowStart, oldest.end.atMs - this.#windows.graceMs);
  }

  #prune(now: number): void {
    this.#changesSincePrune = 0;
    const horizon = this.#horizon(now);
    for (const [uid, list] of this.#drops) {
      trimDrops(list, horizon);
      if (list.head === list.items.length) this.#drops.delete(uid);
    }
  }

  #call<T>(listener: (event: T) => void, event: T): void {
    try {
      listener(event);
    } catch (err) {
      this.#logger.error({ err: err instanceof Error ? err.message : String(err) }, 'a loss listener failed');
    }
  }
}

/** One owner's count drops, in time order; those before `head` are expired or used up. */
interface DropList {
  items: CountDrop[];
  head: number;
}

/**
 * Moves past the expired and used-up drops at the front. Drops are appended in time order
 * (the clock is monotonic), so the expired ones come first, and a pod end uses the oldest
 * drop in its window, so used-up ones mostly do too; one in the middle is skipped by
 * {@link classifyPodEnd} until the front reaches it. The array is cut once half of it is
 * behind the head: each drop is passed and copied a bounded number of times, where
 * filtering and copying the whole list on every change and every pod end made an owner
 * whose count flaps cost time in proportion to its drops within the window.
 */
function trimDrops(list: DropList, horizon: number): void {
  let i = list.head;
  for (let d = list.items[i]; d !== undefined && (d.atMs < horizon || d.remaining <= 0); d = list.items[i]) i++;
  list.head = i;
  if (i > 0 && i * 2 >= list.items.length) {
    list.items = list.items.slice(i);
    list.head = 0;
  }
}

function remember<T>(list: T[], item: T, keep: number): void {
  list.push(item);
  if (list.length > keep) list.splice(0, list.length - keep);
}
