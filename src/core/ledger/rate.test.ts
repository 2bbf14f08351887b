import { describe, expect, it } from 'vitest';
import { at, HOUR, key, limits, MIN, res, T0 } from '../../../test/helpers/ledger-state-fixtures.ts';
import { expire } from './expire.ts';
import { type LedgerLimits, MAX_WINDOW_MS } from './limits.ts';
import { rateUsed } from './rate.ts';
import { confirmReservation, reserve } from './reservations.ts';
import { emptyState } from './state.ts';

describe('the rate', () => {
  it('counts whole minutes rounded outward: the window errs on the strict side', () => {
    let s = reserve(emptyState(), res(key(1), 1), at(0), limits);
    s = confirmReservation(s, key(1), at(1), limits).state;
    // The bucket's minute started before T0 + 0; a 5 minute window ending 5 min 30 s later still touches it.
    const minuteStart = Math.floor(T0 / MIN) * MIN;
    expect(rateUsed(s, 5 * MIN, new Date(minuteStart + 5 * MIN + 59_999))).toBe(1);
    expect(rateUsed(s, 5 * MIN, new Date(minuteStart + 6 * MIN))).toBe(0);
  });

  it('expires buckets past the longest window in use, and clamps that window to 24 h', () => {
    let s = reserve(emptyState(), res(key(1), 1), at(0), limits);
    s = confirmReservation(s, key(1), at(1), limits).state;
    expect(expire(s, at(2 * HOUR - MIN), limits)).toBe(s);
    expect(expire(s, at(2 * HOUR + MIN), limits).rate).toEqual([]);
    const huge: LedgerLimits = { ...limits, maxWindowMs: 10 * MAX_WINDOW_MS };
    expect(expire(s, at(MAX_WINDOW_MS + 2 * MIN), huge).rate).toEqual([]);
  });
});
