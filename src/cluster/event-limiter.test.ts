import { describe, expect, it } from 'vitest';
import { EventLimiter } from './event-limiter.ts';

describe('EventLimiter', () => {
  it('lets each key send 10 per sliding minute', () => {
    const limiter = new EventLimiter(10, 60_000);
    const sent = Array.from({ length: 15 }, (_, i) => limiter.take('agent-1', i * 1000)).filter(Boolean).length;
    expect(sent).toBe(10);
    expect(limiter.take('agent-2', 14_000)).toBe(true);
    // The first slot (at 0 s) frees at 60 s, the second at 61 s.
    expect(limiter.take('agent-1', 59_999)).toBe(false);
    expect(limiter.take('agent-1', 60_000)).toBe(true);
    expect(limiter.take('agent-1', 60_500)).toBe(false);
    expect(limiter.take('agent-1', 61_000)).toBe(true);
  });
});
