import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { highestSteadyWithin, potentialAt } from './instances.ts';
import type { ExtraInstances } from './types.ts';

describe('potentialAt', () => {
  it('rounds a percentage surge up, as the Deployment controller does', () => {
    expect(potentialAt(10, { type: 'surge-percent', percent: 25 })).toBe(13);
    expect(potentialAt(1, { type: 'surge-percent', percent: 25 })).toBe(2);
    expect(potentialAt(0, { type: 'surge-percent', percent: 25 })).toBe(0);
  });
  it('adds a fixed surge and multiplies overlapping runs', () => {
    expect(potentialAt(3, { type: 'surge-fixed', instances: 2 })).toBe(5);
    expect(potentialAt(2, { type: 'overlap', runs: 3 })).toBe(6);
    expect(potentialAt(4, { type: 'none' })).toBe(4);
  });
});

describe('highestSteadyWithin', () => {
  const extras = fc.oneof(
    fc.constant<ExtraInstances>({ type: 'none' }),
    fc.integer({ min: 0, max: 5 }).map((instances): ExtraInstances => ({ type: 'surge-fixed', instances })),
    fc.integer({ min: 0, max: 100 }).map((percent): ExtraInstances => ({ type: 'surge-percent', percent })),
    fc.integer({ min: 1, max: 4 }).map((runs): ExtraInstances => ({ type: 'overlap', runs })),
  );
  it('returns the largest steady count that fits, checked against a linear scan', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), extras, (room, extra) => {
        let expected = -1;
        for (let s = 0; s <= room; s++) if (potentialAt(s, extra) <= room) expected = s;
        expect(highestSteadyWithin(room, extra)).toBe(expected);
      }),
    );
  });
  it('returns -1 when the room is negative', () => {
    expect(highestSteadyWithin(-1, { type: 'none' })).toBe(-1);
  });
});
