import { addToBuckets, bump, minuteOf, msOf } from './collection-helpers.ts';
import { boundsOf, count, type LedgerLimits } from './limits.ts';
import { type Fields, isCount, isTime } from './read-fields.ts';
import type { AgentLedgerState, Lease } from './state.ts';

/*
 * Allowance leases (docs/ARCHITECTURE.md "Allowance leases"). A guard replica holds a
 * share of an agent's allowance, charged in the shared state as if it were growth already
 * admitted: every other replica counts it in the rate and in the family's pending
 * instances, so no two replicas can spend it. The holder spends it from memory and writes
 * what it admitted behind its answers; each write moves the spent part from the lease to
 * reservations, which leaves the total charged unchanged.
 */

/** Holder names as the state stores them: a pod name and a suffix, at most 128 characters. */
const HOLDER = /^[A-Za-z0-9._:-]{1,128}$/;

/** True for a name a lease may be held under. */
export const isLeaseHolder = (v: unknown): v is string => typeof v === 'string' && HOLDER.test(v);

/** The holder's live lease (undefined: none, or past its expiry). */
export function leaseOf(state: AgentLedgerState, holder: string, now: Date): Lease | undefined {
  const t = msOf(now);
  return state.leases?.find((l) => l.holder === holder && l.expiresAt > t);
}

/** Instances charged by live leases, leaving out the holder's own when `except` names it. */
export function leasedInstances(state: AgentLedgerState, now: Date, except?: string): number {
  const leases = state.leases;
  if (leases === undefined) return 0;
  const t = msOf(now);
  let sum = 0;
  for (const l of leases) if (l.expiresAt > t && l.holder !== except) sum += l.instances;
  return sum;
}

/** The state without the holder's lease: what the holder decides on (the same object when it holds none). */
export function withoutLease(state: AgentLedgerState, holder: string): AgentLedgerState {
  const leases = state.leases;
  if (leases === undefined || !leases.some((l) => l.holder === holder)) return state;
  const rest = leases.filter((l) => l.holder !== holder);
  return { ...state, leases: rest.length === 0 ? undefined : rest };
}

/**
 * Sets the holder's lease to `instances` until `now + ttlMs` (0 instances: returns it).
 * Past the bound on leases the oldest other lease is dropped and its instances charged to
 * the rate, the strict side.
 */
export function setLease(
  state: AgentLedgerState,
  holder: string,
  instances: number,
  now: Date,
  ttlMs: number,
  limits: LedgerLimits,
): AgentLedgerState {
  const rest = withoutLease(state, holder);
  if (instances === 0) return rest;
  const t = msOf(now);
  const lease: Lease = { holder, instances: count(instances, 'lease instances'), at: t, expiresAt: t + ttlMs };
  return capLeases({ ...rest, leases: [...(rest.leases ?? []), lease] }, limits);
}

/**
 * Lowers the holder's lease by what it spent (never below 0). A lease already gone
 * (expired and charged by another replica) is left gone: the spends are then charged twice,
 * once by that expiry and once as reservations, the strict side.
 */
export function spendLease(state: AgentLedgerState, holder: string, spent: number): AgentLedgerState {
  if (spent === 0) return state;
  const leases = state.leases;
  const i = leases?.findIndex((l) => l.holder === holder) ?? -1;
  const lease = leases?.[i];
  if (leases === undefined || lease === undefined) return state;
  const next = leases.slice();
  next[i] = { ...lease, instances: Math.max(0, lease.instances - spent) };
  return { ...state, leases: next };
}

/**
 * Charges the leases past their expiry to the rate at the minute they expired, and drops
 * them. A holder returns its lease before then; one still there has a holder that died or
 * could not reach the API server, and may have admitted growth it never wrote.
 */
export function expireLeases(state: AgentLedgerState, now: Date, limits: LedgerLimits): AgentLedgerState {
  const leases = state.leases;
  const t = msOf(now);
  if (leases === undefined || leases.every((l) => l.expiresAt > t)) return state;
  const live = leases.filter((l) => l.expiresAt > t);
  return chargeToRate(
    { ...state, leases: live.length === 0 ? undefined : live },
    leases.filter((l) => l.expiresAt <= t),
    limits,
  );
}

/** Keeps the newest leases within the bound; the dropped ones are charged to the rate, as an expiry would. */
export function capLeases(state: AgentLedgerState, limits: LedgerLimits): AgentLedgerState {
  const leases = state.leases ?? [];
  const cap = boundsOf(limits).leases;
  if (leases.length <= cap) return state;
  const dropped = leases.slice(0, leases.length - cap);
  const charged = chargeToRate({ ...state, leases: leases.slice(leases.length - cap) }, dropped, limits);
  return { ...charged, evictions: bump(charged.evictions, 'leases', dropped.length) };
}

/** Adds the leases' instances to the rate bucket of the minute each expires: the latest its holder could have spent them. */
function chargeToRate(state: AgentLedgerState, leases: readonly Lease[], limits: LedgerLimits): AgentLedgerState {
  let rate = state.rate;
  let evicted = 0;
  for (const l of leases) {
    const added = addToBuckets(rate, minuteOf(l.expiresAt), l.instances, boundsOf(limits).buckets);
    rate = added.buckets;
    evicted += added.evicted;
  }
  return { ...state, rate, evictions: bump(state.evictions, 'rate', evicted) };
}

/** The leases field of a serialised state; unreadable entries are reported and dropped. */
export function readLease(v: Fields): Lease | undefined {
  return isLeaseHolder(v.holder) && isCount(v.instances) && isTime(v.at) && isTime(v.expiresAt)
    ? { holder: v.holder, instances: v.instances, at: v.at, expiresAt: v.expiresAt }
    : undefined;
}
