import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sampleState, T0 } from '../../../test/helpers/ledger-state-fixtures.ts';
import { parseState } from './parse.ts';
import { serializeState } from './serialize.ts';
import { emptyState } from './state.ts';

describe('parseState', () => {
  it('reads the known fields of a newer version and ignores the rest', () => {
    const v1 = JSON.parse(serializeState(sampleState())) as Record<string, unknown>;
    const v2 = {
      ...v1,
      version: 2,
      episodeStats: [{ minute: 1, overuse: 3 }],
      held: (v1.held as Record<string, unknown>[]).map((h) => ({ ...h, basis: 'requested' })),
    };
    const parsed = parseState(JSON.stringify(v2));
    expect(parsed.problems).toEqual([]);
    expect(parsed.sourceVersion).toBe(2);
    expect(parsed.state).toEqual(sampleState());
    // Written back in this code's version: the newer guard reads v1 the same way.
    expect(JSON.parse(serializeState(parsed.state))).toMatchObject({ version: 1 });
    expect(JSON.parse(serializeState(parsed.state))).not.toHaveProperty('episodeStats');
  });

  it('reads a minimal version 1 ledger with collections missing', () => {
    expect(parseState('{"version":1}')).toEqual({ state: emptyState(), problems: [], sourceVersion: 1 });
    expect(parseState(undefined).state).toBe(emptyState());
    expect(parseState('').problems).toEqual([]);
  });

  it('turns garbage into an empty state and a problem, never a throw', () => {
    for (const text of ['{', '[]', 'null', '"x"', '{"version":0}', '{"held":[]}', '{"version":"1"}', '{"version":1.5}']) {
      const parsed = parseState(text);
      expect(parsed.state).toBe(emptyState());
      expect(parsed.problems.length).toBeGreaterThan(0);
    }
  });

  it('drops unreadable entries one by one and says so', () => {
    const text = JSON.stringify({
      version: 1,
      held: [{ key: 'k', requested: 1, at: T0 }, { key: 'k2', requested: -1, at: T0 }, 'x'],
      episodeKeys: 'not a list',
      provenance: [{ uid: 'a"b', at: T0 }],
      rate: [{ minute: 5, instances: 1 }, { minute: 3, instances: 2 }],
      evictions: { held: 2, episodeKeys: 'many' },
    });
    const parsed = parseState(text);
    expect(parsed.state.held).toEqual([{ key: 'k', requested: 1, at: T0 }]);
    expect(parsed.state.provenance).toEqual([]);
    expect(parsed.state.rate.map((b) => b.minute)).toEqual([3, 5]);
    expect(parsed.state.evictions).toMatchObject({ held: 2, episodeKeys: 0 });
    expect(parsed.problems).toEqual([
      'held: 2 unreadable entries dropped',
      'episodeKeys: not a list; ignored',
      'provenance: 1 unreadable entry dropped',
    ]);
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ version: 1, held: v, rate: v }))), (text) => {
        const parsed = parseState(text);
        expect(parsed.state.version).toBe(1);
      }),
    );
  });
});
