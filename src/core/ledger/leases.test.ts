import { describe, expect, it } from 'vitest';
import { at, HOUR, limits, MIN, res, key, small, T0 } from '../../../test/helpers/ledger-state-fixtures.ts';
import { enforceBounds } from './enforce-bounds.ts';
import { expire } from './expire.ts';
import { isLeaseHolder, leasedInstances, leaseOf, setLease, spendLease, withoutLease } from './leases.ts';
import { parseState } from './parse.ts';
import { rateUsed } from './rate.ts';
import { reserve } from './reservations.ts';
import { serializeState } from './serialize.ts';
import { emptyState, isEmptyState } from './state.ts';

const TTL = 30_000;

describe('allowance leases', () => {
  it("charges a live lease to every rate window, whatever its age, and leaves the holder's own out on request", () => {
    const s = setLease(emptyState(), 'a', 4, at(0), 10 * MIN, limits);
    expect(leaseOf(s, 'a', at(0))?.instances).toBe(4);
    // Older than the 1-minute window and still charged: its holder may spend it until it expires.
    expect(rateUsed(s, MIN, at(5 * MIN))).toBe(4);
    expect(leasedInstances(s, at(0))).toBe(4);
    expect(leasedInstances(s, at(0), 'a')).toBe(0);
    expect(withoutLease(s, 'a')).toEqual(emptyState());
    expect(withoutLease(s, 'b')).toBe(s);
  });

  it('moves what the holder spent from the lease into reservations, leaving the total charged as it was', () => {
    let s = setLease(emptyState(), 'a', 5, at(0), TTL, limits);
    const before = rateUsed(s, HOUR, at(1000));
    s = spendLease(reserve(s, res(key(1), 2), at(1000), limits), 'a', 2);
    expect(leaseOf(s, 'a', at(1000))?.instances).toBe(3);
    expect(rateUsed(s, HOUR, at(1000))).toBe(before);
    // Never below zero; a lease already gone stays gone.
    expect(leaseOf(spendLease(s, 'a', 9), 'a', at(1000))?.instances).toBe(0);
    expect(spendLease(withoutLease(s, 'a'), 'a', 1)).toEqual(withoutLease(s, 'a'));
  });

  it('replaces the holder’s lease on a new grant and removes it when set to zero', () => {
    let s = setLease(emptyState(), 'a', 5, at(0), TTL, limits);
    s = setLease(s, 'b', 2, at(0), TTL, limits);
    s = setLease(s, 'a', 7, at(1000), TTL, limits);
    expect(s.leases?.map((l) => [l.holder, l.instances])).toEqual([
      ['b', 2],
      ['a', 7],
    ]);
    s = setLease(setLease(s, 'a', 0, at(2000), TTL, limits), 'b', 0, at(2000), TTL, limits);
    expect(s.leases).toBeUndefined();
    expect(isEmptyState(s)).toBe(true);
  });

  it('charges a lease left to expire to the rate at the minute it expired: its holder may have spent it unwritten', () => {
    const s = setLease(emptyState(), 'a', 3, at(0), TTL, limits);
    expect(leaseOf(s, 'a', at(TTL))).toBeUndefined();
    expect(leasedInstances(s, at(TTL))).toBe(0);
    const e = expire(s, at(TTL), limits);
    expect(e.leases).toBeUndefined();
    expect(e.rate).toEqual([{ minute: Math.floor((T0 + TTL) / MIN), instances: 3 }]);
    expect(rateUsed(e, MIN, at(TTL))).toBe(3);
    expect(expire(e, at(TTL + 1), limits)).toBe(e);
  });

  it('keeps at most the bound of leases, charging the oldest dropped one to the rate and counting it', () => {
    const tight = small({ leases: 2 });
    let s = setLease(emptyState(), 'a', 1, at(0), TTL, tight);
    s = setLease(s, 'b', 2, at(1), TTL, tight);
    s = setLease(s, 'c', 4, at(2), TTL, tight);
    expect(s.leases?.map((l) => l.holder)).toEqual(['b', 'c']);
    expect(s.evictions.leases).toBe(1);
    expect(rateUsed(s, HOUR, at(3))).toBe(7);
    // A parsed state over the bound is cut the same way.
    const wide = setLease(setLease(setLease(emptyState(), 'a', 1, at(0), TTL, limits), 'b', 2, at(1), TTL, limits), 'c', 4, at(2), TTL, limits);
    expect(enforceBounds(wide, tight).leases?.map((l) => l.holder)).toEqual(['b', 'c']);
  });

  it('reads back what it writes, drops a malformed lease with a problem, and writes no field when there is none', () => {
    const s = setLease(emptyState(), 'guard-7d9f-x1:0', 3, at(0), TTL, limits);
    const text = serializeState(s);
    expect(parseState(text, limits).state).toEqual(s);
    expect(serializeState(emptyState())).not.toContain('lease');
    const raw = JSON.parse(text) as { leases: unknown[] };
    raw.leases.push({ holder: 'bad holder!', instances: 1, at: T0, expiresAt: T0 + 1 }, { holder: 'b', instances: -1, at: T0, expiresAt: T0 });
    const parsed = parseState(JSON.stringify(raw), limits);
    expect(parsed.state.leases).toEqual(s.leases);
    expect(parsed.problems).toEqual(['leases: 2 unreadable entries dropped']);
    expect(isLeaseHolder('x'.repeat(129))).toBe(false);
  });
});
