import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CarriedIndex } from './carried-index.ts';

interface Entry {
  readonly key: string;
  readonly n: number;
}

const entry = (key: string, n = 0): Entry => ({ key, n });

describe('CarriedIndex', () => {
  it('answers as a scan would, first match first', () => {
    const index = new CarriedIndex<Entry>((e) => e.key);
    const items = [entry('a', 1), entry('b', 2), entry('a', 3)];
    expect(index.get(items, 'a')).toBe(items[0]);
    expect(index.get(items, 'b')).toBe(items[1]);
    expect(index.get(items, 'c')).toBeUndefined();
  });

  it('carries its index to a copy and answers for both arrays correctly', () => {
    const index = new CarriedIndex<Entry>((e) => e.key);
    const a = [entry('a'), entry('b'), entry('c')];
    expect(index.get(a, 'a')).toBe(a[0]);
    const added = entry('d');
    const b = [...a.slice(1), added];
    index.carry(a, b, a.slice(0, 1), [added]);
    expect(index.get(b, 'a')).toBeUndefined();
    expect(index.get(b, 'd')).toBe(added);
    // The old array kept its meaning: its index is rebuilt, not shared.
    expect(index.get(a, 'a')).toBe(a[0]);
    expect(index.get(a, 'd')).toBeUndefined();
  });

  it('drops a carried index that does not fit the new array', () => {
    const index = new CarriedIndex<Entry>((e) => e.key);
    const a = [entry('a'), entry('b')];
    index.get(a, 'a');
    // Told of no change, though the new array lost 'b': sizes differ, so no index is kept.
    const b = [a[0] ?? entry('a')];
    index.carry(a, b, [], []);
    expect(index.get(b, 'b')).toBeUndefined();
    expect(index.get(b, 'a')).toBe(b[0]);
  });

  it('matches a scan over any sequence of appends, drops and lookups', () => {
    // Each step appends a key (dropping an existing entry with that key), then caps the
    // length by dropping the oldest, as the ledger's bounded collections do.
    const steps = fc.array(fc.record({ key: fc.integer({ min: 0, max: 30 }), cap: fc.integer({ min: 1, max: 12 }), look: fc.integer({ min: 0, max: 30 }) }), {
      maxLength: 80,
    });
    fc.assert(
      fc.property(steps, (ops) => {
        const index = new CarriedIndex<Entry>((e) => e.key);
        let items: readonly Entry[] = [];
        ops.forEach((op, i) => {
          const key = `k${op.key}`;
          const existing = index.get(items, key);
          expect(existing).toBe(items.find((e) => e.key === key));
          const rest = existing ? items.filter((e) => e !== existing) : items;
          const added = entry(key, i);
          const all = [...rest, added];
          const next = all.slice(Math.max(0, all.length - op.cap));
          const dropped = all.slice(0, all.length - next.length);
          index.carry(items, next, existing ? [existing, ...dropped] : dropped, dropped.includes(added) ? [] : [added]);
          items = next;
          const look = `k${op.look}`;
          expect(index.get(items, look)).toBe(items.find((e) => e.key === look));
        });
      }),
    );
  });
});
