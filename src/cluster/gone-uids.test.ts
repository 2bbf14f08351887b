import { describe, expect, it } from 'vitest';
import { GoneUids } from './gone-uids.ts';

describe('GoneUids', () => {
  it('remembers marked UIDs and nothing else', () => {
    const gone = new GoneUids(10);
    gone.mark('a');
    gone.mark('a');
    expect(gone.has('a')).toBe(true);
    expect(gone.has('b')).toBe(false);
    expect(gone.size).toBe(1);
  });

  it('forgets the oldest beyond its capacity, over many compactions', () => {
    const gone = new GoneUids(100);
    for (let i = 0; i < 5000; i++) gone.mark(`uid-${i}`);
    expect(gone.size).toBe(100);
    expect(gone.has('uid-4899')).toBe(false);
    expect(gone.has('uid-4900')).toBe(true);
    expect(gone.has('uid-4999')).toBe(true);
  });
});
