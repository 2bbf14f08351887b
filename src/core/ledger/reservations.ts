import { addToBuckets, bump, keepSame, minuteOf, msOf } from './collection-helpers.ts';
import { compactId } from './compact-id.ts';
import { boundsOf, count, type LedgerBounds, type LedgerLimits } from './limits.ts';
import { type Fields, isCount, isId, isTime } from './read-fields.ts';
import type { AgentLedgerState, Reservation } from './state.ts';

/** What a caller reserves; the time and the timeout are added from `now` and the limits. */
export interface ReservationRequest {
  readonly key: string;
  readonly workload: string;
  readonly steady: number;
  readonly addedInstances: number;
}

/**
 * Reserves admitted growth until the view confirms it. Idempotent per episode key: the
 * apiserver may call the validating webhook again for the same request. Past the bound
 * the oldest reservation is not dropped but charged to the rate as if confirmed (the
 * strict side: dropping it would hand its instances back to the agent).
 */
export function reserve(state: AgentLedgerState, request: ReservationRequest, now: Date, limits: LedgerLimits): AgentLedgerState {
  const key = compactId(request.key);
  const t = msOf(now);
  if (state.reservations.some((r) => r.key === key && r.expiresAt > t)) return state;
  const reservation: Reservation = {
    key,
    workload: compactId(request.workload),
    steady: count(request.steady, 'steady'),
    addedInstances: count(request.addedInstances, 'addedInstances'),
    at: t,
    expiresAt: t + limits.reservationTtlMs,
  };
  const all = [...state.reservations.filter((r) => r.key !== key), reservation];
  return capReservations({ ...state, reservations: all }, boundsOf(limits), t);
}

/**
 * Keeps the newest reservations within the bound. The dropped ones are charged to the
 * rate as if confirmed (the strict side: dropping them would hand their instances back
 * to the agent); only the ones still pending count as evictions.
 */
export function capReservations(state: AgentLedgerState, bounds: LedgerBounds, t: number): AgentLedgerState {
  const all = state.reservations;
  if (all.length <= bounds.reservations) return state;
  const overflow = all.slice(0, all.length - bounds.reservations);
  let rate = state.rate;
  let rateEvicted = 0;
  let live = 0;
  for (const r of overflow) {
    if (r.expiresAt <= t) continue;
    live++;
    const added = addToBuckets(rate, minuteOf(r.at), r.addedInstances, bounds.buckets);
    rate = added.buckets;
    rateEvicted += added.evicted;
  }
  return {
    ...state,
    reservations: all.slice(all.length - bounds.reservations),
    rate,
    evictions: bump(bump(state.evictions, 'reservations', live), 'rate', rateEvicted),
  };
}

/** Confirms every pending reservation `match` accepts: its growth moves into the rate buckets. */
function confirmAll(
  state: AgentLedgerState,
  match: (r: Reservation) => boolean,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly confirmed: number } {
  const t = msOf(now);
  const hits = state.reservations.filter((r) => r.expiresAt > t && match(r));
  if (hits.length === 0) return { state, confirmed: 0 };
  const cap = boundsOf(limits).buckets;
  let rate = state.rate;
  let evicted = 0;
  for (const r of hits) {
    // Charged to the minute the growth was admitted, so that the window measures when
    // the agent grew, not when the view caught up; rateUsed is unchanged by confirming.
    const added = addToBuckets(rate, minuteOf(r.at), r.addedInstances, cap);
    rate = added.buckets;
    evicted += added.evicted;
  }
  const reservations = state.reservations.filter((r) => !hits.includes(r));
  return {
    state: { ...state, reservations, rate, evictions: bump(state.evictions, 'rate', evicted) },
    confirmed: hits.length,
  };
}

/** Confirms the reservation of an episode key: the growth happened; it now counts in the rate buckets. */
export function confirmReservation(
  state: AgentLedgerState,
  key: string,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly confirmed: boolean } {
  const k = compactId(key);
  const out = confirmAll(state, (r) => r.key === k, now, limits);
  return { state: out.state, confirmed: out.confirmed > 0 };
}

/**
 * Confirms every reservation of a workload that the view now shows at `steady` or more.
 * Pass every identifier the workload had: its UID and, for a CREATE reserved before the
 * UID existed, its group/kind/namespace/name (as `workloadKeyOf` builds them).
 */
export function confirmObserved(
  state: AgentLedgerState,
  workloadIds: readonly string[],
  steady: number,
  now: Date,
  limits: LedgerLimits,
): { readonly state: AgentLedgerState; readonly confirmed: number } {
  const ids = new Set(workloadIds.map(compactId));
  return confirmAll(state, (r) => ids.has(r.workload) && r.steady <= steady, now, limits);
}

/** Releases reservations past their timeout: the view never showed them, so they did not happen. */
export function releaseExpired(
  state: AgentLedgerState,
  now: Date,
): { readonly state: AgentLedgerState; readonly released: readonly Reservation[] } {
  const t = msOf(now);
  const reservations = keepSame(state.reservations, (r) => r.expiresAt > t);
  if (reservations === state.reservations) return { state, released: [] };
  return { state: { ...state, reservations }, released: state.reservations.filter((r) => r.expiresAt <= t) };
}

/**
 * Instances not yet visible in the cluster view: pending reservations, of every workload
 * or of the given workload identifiers. With `now`, reservations past their timeout are
 * left out even before `expire` removes them.
 */
export function reservedInstances(state: AgentLedgerState, now?: Date, workloadIds?: readonly string[]): number {
  const t = now ? msOf(now) : Number.NEGATIVE_INFINITY;
  const ids = workloadIds ? new Set(workloadIds.map(compactId)) : undefined;
  let sum = 0;
  for (const r of state.reservations) {
    if (r.expiresAt > t && (!ids || ids.has(r.workload))) sum += r.addedInstances;
  }
  return sum;
}

/** A reservation read from a serialised state, or undefined when it is not one. */
export function readReservation(v: Fields): Reservation | undefined {
  return isId(v.key) && isId(v.workload) && isCount(v.steady) && isCount(v.addedInstances) && isTime(v.at) && isTime(v.expiresAt)
    ? { key: v.key, workload: v.workload, steady: v.steady, addedInstances: v.addedInstances, at: v.at, expiresAt: v.expiresAt }
    : undefined;
}
