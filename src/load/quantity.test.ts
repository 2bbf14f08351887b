import { describe, expect, it } from 'vitest';
import { parseQuantity } from './quantity.ts';

describe('parseQuantity', () => {
  it.each([
    ['250m', 0.25],
    ['1', 1],
    ['0.5', 0.5],
    ['.5', 0.5],
    ['2.', 2],
    ['+1', 1],
    ['1500000n', 0.0015],
    ['2u', 0.000002],
    ['1k', 1000],
    ['2M', 2e6],
    ['1Ki', 1024],
    ['128Mi', 128 * 1024 * 1024],
    ['1Gi', 2 ** 30],
    ['1e3', 1000],
    ['5E-1', 0.5],
    ['1E', 1e18],
    ['0', 0],
    [' 100m ', 0.1],
  ])('reads %s as %d', (text, value) => {
    const read = parseQuantity(text);
    expect(read).toBeDefined();
    // Relative: 1E is 10^18, 2u is 2·10^-6.
    expect(Math.abs((read ?? Number.NaN) - value)).toBeLessThanOrEqual(Math.abs(value) * 1e-12);
  });

  it('reads millicores and nanocores exactly enough to compare utilisations', () => {
    expect(parseQuantity('250m')).toBe(0.25);
    expect(parseQuantity('250000000n')).toBe(0.25);
  });

  it.each(['', 'm', '1.2.3', '1x', '1KI', '1 m', 'abc', '1e', '--1', 'NaN', 'Infinity', '1mi'])('refuses %j', (text) => {
    expect(parseQuantity(text)).toBeUndefined();
  });
});
