import { describe, expect, it } from 'vitest';
import { parseTimeoutParam } from './timeout-param.ts';

describe('parseTimeoutParam', () => {
  it('reads the durations the apiserver sends', () => {
    expect(parseTimeoutParam('10s')).toBe(10_000);
    expect(parseTimeoutParam('30s')).toBe(30_000);
    expect(parseTimeoutParam('1m30s')).toBe(90_000);
    expect(parseTimeoutParam('500ms')).toBe(500);
    expect(parseTimeoutParam('1.5s')).toBe(1500);
  });
  it('returns undefined for anything else', () => {
    expect(parseTimeoutParam(undefined)).toBeUndefined();
    expect(parseTimeoutParam('')).toBeUndefined();
    expect(parseTimeoutParam('10')).toBeUndefined();
    expect(parseTimeoutParam('10s junk')).toBeUndefined();
    expect(parseTimeoutParam('abc')).toBeUndefined();
  });
});
