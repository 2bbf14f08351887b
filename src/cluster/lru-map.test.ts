import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LruMap } from './lru-map.ts';

describe('LruMap', () => {
  it('drops the least recently used entry past its bound, a read counting as a use', () => {
    const m = new LruMap<number>(2);
    expect(m.set('a', 1)).toBeUndefined();
    expect(m.set('b', 2)).toBeUndefined();
    expect(m.get('a')).toBe(1);
    expect(m.set('c', 3)).toEqual({ key: 'b', value: 2 });
    expect(m.has('b')).toBe(false);
    expect([...m.keys()]).toEqual(['c', 'a']);
    expect(m.evictions).toBe(1);
  });

  it('replaces a value in place without evicting, and forgets a deleted key', () => {
    const m = new LruMap<number>(2);
    m.set('a', 1);
    m.set('b', 2);
    expect(m.set('a', 10)).toBeUndefined();
    expect(m.get('a')).toBe(10);
    expect(m.delete('b')).toBe(true);
    expect(m.delete('b')).toBe(false);
    expect(m.size).toBe(1);
    m.set('c', 3);
    m.set('d', 4);
    expect([...m.keys()]).toEqual(['d', 'c']);
  });

  it('agrees with a reference model over random operations', () => {
    const op = fc.oneof(
      fc.record({ type: fc.constant('set' as const), key: fc.integer({ min: 0, max: 9 }), value: fc.integer() }),
      fc.record({ type: fc.constant('get' as const), key: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ type: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 9 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 60 }), (max, ops) => {
        const lru = new LruMap<number>(max);
        // The model: an array of [key, value], most recently used first.
        let model: [string, number][] = [];
        let evicted = 0;
        for (const o of ops) {
          const key = String(o.key);
          const at = model.findIndex(([k]) => k === key);
          if (o.type === 'set') {
            if (at >= 0) model.splice(at, 1);
            model.unshift([key, o.value]);
            const dropped = model.length > max ? model.pop() : undefined;
            if (dropped) evicted++;
            expect(lru.set(key, o.value)).toEqual(dropped && { key: dropped[0], value: dropped[1] });
          } else if (o.type === 'get') {
            const found = at >= 0 ? model.splice(at, 1)[0] : undefined;
            if (found) model.unshift(found);
            expect(lru.get(key)).toBe(found?.[1]);
          } else {
            if (at >= 0) model = model.filter(([k]) => k !== key);
            expect(lru.delete(key)).toBe(at >= 0);
          }
          expect([...lru.keys()]).toEqual(model.map(([k]) => k));
          expect(lru.size).toBe(model.length);
        }
        expect(lru.evictions).toBe(evicted);
      }),
    );
  });
});
