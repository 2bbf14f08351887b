import { describe, expect, it } from 'vitest';
import { recordJustification } from './justification.ts';
import { parseState } from './parse.ts';
import { serializeState } from './serialize.ts';
import { emptyState, isEmptyState } from './state.ts';

describe('justification', () => {
  it('keeps the hash of the last recorded growth, round-trips it, and reads a bad one as none', () => {
    const now = new Date('2026-12-05T08:00:00Z');
    const state = recordJustification(emptyState(), 'abc123', now);
    expect(recordJustification(state, 'abc123', now)).toBe(state);
    expect(isEmptyState(state)).toBe(false);
    expect(parseState(serializeState(state)).state.justification).toEqual({ hash: 'abc123', at: now.getTime() });
    const bad = parseState(JSON.stringify({ version: 1, justification: { hash: 'NOT HEX', at: 1 } }));
    expect(bad.state.justification).toBeUndefined();
    expect(bad.problems).toEqual(['justification: unreadable; ignored']);
  });
});
