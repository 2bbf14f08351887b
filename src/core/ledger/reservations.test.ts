import { describe, expect, it } from 'vitest';
import { at, key, limits, MIN, res, small, T0 } from '../../../test/helpers/ledger-state-fixtures.ts';
import { expire } from './expire.ts';
import { rateUsed } from './rate.ts';
import { confirmObserved, confirmReservation, releaseExpired, reserve, reservedInstances } from './reservations.ts';
import { emptyState } from './state.ts';

describe('reservations', () => {
  it('counts a reservation in the rate and the reserved instances until it is confirmed or released', () => {
    let s = reserve(emptyState(), res(key(1), 3), at(0), limits);
    expect(reserve(s, res(key(1), 3), at(10), limits)).toBe(s); // the apiserver calling again
    expect(rateUsed(s, 5 * MIN, at(30_000))).toBe(3);
    expect(reservedInstances(s)).toBe(3);
    expect(reservedInstances(s, at(0), ['uid-w'])).toBe(3);
    expect(reservedInstances(s, at(0), ['uid-other'])).toBe(0);
    // Past its timeout it no longer counts, even before expire() removes it.
    expect(reservedInstances(s, at(2 * MIN))).toBe(0);
    expect(rateUsed(s, 5 * MIN, at(2 * MIN))).toBe(0);
    const released = releaseExpired(s, at(2 * MIN));
    expect(released.released.map((r) => r.addedInstances)).toEqual([3]);
    expect(released.state.reservations).toEqual([]);
    expect(releaseExpired(released.state, at(3 * MIN)).state).toBe(released.state);
    s = expire(s, at(2 * MIN), limits);
    expect(s.reservations).toEqual([]);
  });

  it('moves a confirmed reservation into the bucket of the minute it was admitted, never lowering the rate used', () => {
    const s0 = reserve(emptyState(), res(key(1), 2), at(59_000), limits);
    const before = rateUsed(s0, 5 * MIN, at(70_000));
    const { state, confirmed } = confirmReservation(s0, key(1), at(70_000), limits);
    expect(confirmed).toBe(true);
    expect(state.reservations).toEqual([]);
    expect(state.rate).toEqual([{ minute: Math.floor((T0 + 59_000) / MIN), instances: 2 }]);
    expect(rateUsed(state, 5 * MIN, at(70_000))).toBeGreaterThanOrEqual(before);
    expect(reservedInstances(state)).toBe(0);
    expect(confirmReservation(state, key(1), at(80_000), limits).confirmed).toBe(false);
  });

  it('confirms by what the view shows: every id of the workload, at that count or more', () => {
    let s = reserve(emptyState(), res(key(1), 1, 'apps/Deployment/agents/w', 3), at(0), limits);
    s = reserve(s, res(key(2), 2, 'uid-w', 5), at(1), limits);
    const low = confirmObserved(s, ['uid-w', 'apps/Deployment/agents/w'], 4, at(10), limits);
    expect(low.confirmed).toBe(1);
    expect(low.state.reservations.map((r) => r.steady)).toEqual([5]);
    const all = confirmObserved(low.state, ['uid-w'], 5, at(20), limits);
    expect(all.confirmed).toBe(1);
    expect(rateUsed(all.state, 5 * MIN, at(30))).toBe(3);
    expect(confirmObserved(all.state, ['uid-w'], 9, at(30), limits).state).toBe(all.state);
  });

  it('charges reservations dropped by the bound to the rate instead of forgetting them', () => {
    const l = small({ reservations: 2 });
    let s = emptyState();
    for (let i = 0; i < 5; i++) s = reserve(s, res(key(i), 1), at(i * 1000), l);
    expect(s.reservations).toHaveLength(2);
    expect(s.evictions.reservations).toBe(3);
    expect(rateUsed(s, 5 * MIN, at(10_000))).toBe(5);
    expect(reservedInstances(s)).toBe(2);
  });
});
