import { describe, expect, it } from 'vitest';
import { at, HOUR, limits, MIN, small } from '../../../test/helpers/ledger-state-fixtures.ts';
import { expire } from './expire.ts';
import { lossesWithin, recordLoss } from './losses.ts';
import { emptyState } from './state.ts';

describe('losses', () => {
  it('counts a loss once per pod UID, by the time it happened', () => {
    const first = recordLoss(emptyState(), 'pod-1', at(0), at(5000), limits);
    expect(first.isNew).toBe(true);
    expect(recordLoss(first.state, 'pod-1', at(0), at(9000), limits)).toEqual({ state: first.state, isNew: false });
    const two = recordLoss(first.state, 'pod-2', at(1000), at(9000), limits, 2).state;
    expect(lossesWithin(two, 10 * MIN, at(9000))).toBe(3);
    expect(lossesWithin(two, 10 * MIN, at(12 * MIN))).toBe(0);
  });

  it('ignores a loss older than the longest window, so that a forgotten UID cannot come back fresh', () => {
    const s = recordLoss(emptyState(), 'pod-1', at(0), at(3 * HOUR), limits);
    expect(s.isNew).toBe(false);
    expect(s.state).toBe(emptyState());
  });

  it('keeps counting from the buckets when the UID records are evicted by the bound', () => {
    const l = small({ losses: 2 });
    let s = emptyState();
    for (let i = 0; i < 5; i++) s = recordLoss(s, `pod-${i}`, at(i), at(10), l).state;
    expect(s.losses).toHaveLength(2);
    expect(s.evictions.losses).toBe(3);
    expect(lossesWithin(s, 10 * MIN, at(10))).toBe(5);
  });

  it('forgets loss records past the longest window', () => {
    const s = recordLoss(emptyState(), 'pod-1', at(0), at(0), limits).state;
    const later = expire(s, at(2 * HOUR + 2 * MIN), limits);
    expect(later.losses).toEqual([]);
    expect(later.lossBuckets).toEqual([]);
  });
});
