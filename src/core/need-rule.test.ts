import { describe, expect, it } from 'vitest';
import { needByHpaRule } from './need-rule.ts';

describe('needByHpaRule', () => {
  it('keeps the current count within 10% of the target', () => {
    // 4 instances, load 210 at 50 each: ratio 1.05.
    expect(needByHpaRule({ current: 4, ratio: 210 / (4 * 50), instancesAtTarget: 210 / 50 })).toBe(4);
    expect(needByHpaRule({ current: 4, ratio: 181 / 200, instancesAtTarget: 181 / 50 })).toBe(4);
  });

  it('is ceil(load / target) outside the band', () => {
    expect(needByHpaRule({ current: 4, ratio: 260 / 200, instancesAtTarget: 260 / 50 })).toBe(6);
    expect(needByHpaRule({ current: 10, ratio: 100 / 500, instancesAtTarget: 100 / 50 })).toBe(2);
    expect(needByHpaRule({ current: 3, ratio: 300 / 150, instancesAtTarget: 6 })).toBe(6);
  });

  it('uses ceil(current × ratio) for a utilisation ratio', () => {
    expect(needByHpaRule({ current: 3, ratio: 1.6 })).toBe(5);
  });

  it('is need.min at a count of 0 or with no series', () => {
    expect(needByHpaRule({ current: 0, ratio: 5, min: 2 })).toBe(2);
    expect(needByHpaRule({ current: 5, ratio: undefined, min: 2 })).toBe(2);
    expect(needByHpaRule({ current: 5, ratio: undefined })).toBe(1);
  });

  it('stays within min and max', () => {
    expect(needByHpaRule({ current: 4, ratio: 10, instancesAtTarget: 40, max: 10 })).toBe(10);
    expect(needByHpaRule({ current: 4, ratio: 0.01, instancesAtTarget: 0.04, min: 2 })).toBe(2);
  });

  it('honours a custom tolerance', () => {
    expect(needByHpaRule({ current: 4, ratio: 1.2, instancesAtTarget: 4.8, tolerance: 0.25 })).toBe(4);
    expect(needByHpaRule({ current: 4, ratio: 1.2, instancesAtTarget: 4.8, tolerance: 0 })).toBe(5);
  });
});
