import { describe, expect, it } from 'vitest';
import { at, HOUR, key, limits, small } from '../../../test/helpers/ledger-state-fixtures.ts';
import { holdRequested, requestedFor } from './held-requests.ts';
import { emptyState } from './state.ts';

describe('held requests', () => {
  it("keeps the agent's first count: a reinvocation never overwrites it within the window", () => {
    let s = holdRequested(emptyState(), key(10), 10, at(0), limits);
    const again = holdRequested(s, key(10), 4, at(1000), limits);
    expect(again).toBe(s);
    expect(requestedFor(again, key(10), at(2000), limits)).toBe(10);
    expect(requestedFor(again, key(11), at(2000), limits)).toBeUndefined();
    expect(requestedFor(again, key(10), at(HOUR + 1), limits)).toBeUndefined();
    s = holdRequested(again, key(10), 7, at(HOUR + 1), limits);
    expect(requestedFor(s, key(10), at(HOUR + 2), limits)).toBe(7);
    expect(s.held).toHaveLength(1);
  });

  it('drops the oldest past its bound and counts only live ones as evictions', () => {
    const l = small({ held: 2 });
    let s = holdRequested(emptyState(), key(1), 1, at(0), l);
    s = holdRequested(s, key(2), 2, at(HOUR - 10), l);
    s = holdRequested(s, key(3), 3, at(HOUR + 10), l); // key(1) had expired: not an eviction
    expect(s.evictions.held).toBe(0);
    s = holdRequested(s, key(4), 4, at(HOUR + 20), l); // key(2) still live
    expect(s.evictions.held).toBe(1);
    expect(s.held.map((h) => h.requested)).toEqual([3, 4]);
  });

  it('rejects counts that are not whole non-negative int32 numbers', () => {
    expect(() => holdRequested(emptyState(), key(1), -1, at(0), limits)).toThrow(RangeError);
    expect(() => holdRequested(emptyState(), key(1), 1.5, at(0), limits)).toThrow(RangeError);
    expect(() => holdRequested(emptyState(), key(1), Number.NaN, at(0), limits)).toThrow(RangeError);
  });
});
