import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, keyOf, LineSplitter, ListGate, resourceLabel } from './list-watch.ts';

describe('LineSplitter', () => {
  it('finds events split across chunks and several in one chunk', () => {
    const s = new LineSplitter();
    expect(s.push('{"type":"ADD')).toEqual([]);
    expect(s.push('ED"}\n{"type":"B')).toEqual(['{"type":"ADDED"}']);
    expect(s.push('OOKMARK"}\n{"a":1}\n{"b":2}\n')).toEqual(['{"type":"BOOKMARK"}', '{"a":1}', '{"b":2}']);
    expect(s.rest()).toBe('');
  });

  it('drops empty lines and carriage returns, keeps an unfinished tail', () => {
    const s = new LineSplitter();
    expect(s.push('\n\r\n{"x":1}\r\n{"y"')).toEqual(['{"x":1}']);
    expect(s.rest()).toBe('{"y"');
  });

  it('gives the same lines whatever the chunking', () => {
    fc.assert(
      fc.property(
        fc.array(fc.json(), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 30 }),
        (docs, cuts) => {
          const lines = docs.map((d) => JSON.stringify(JSON.parse(d)));
          const text = lines.map((l) => `${l}\n`).join('');
          const s = new LineSplitter();
          const out: string[] = [];
          let at = 0;
          for (let i = 0; at < text.length; i++) {
            const size = cuts[i % cuts.length] ?? 1;
            out.push(...s.push(text.slice(at, at + size)));
            at += size;
          }
          expect(out).toEqual(lines.filter((l) => l.length > 0));
        },
      ),
    );
  });
});

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the cap, with at least half of each step', () => {
    const low = () => 0;
    const high = () => 0.999999;
    expect(backoffDelay(1, 500, 30_000, low)).toBe(250);
    expect(backoffDelay(1, 500, 30_000, high)).toBeCloseTo(500, 0);
    expect(backoffDelay(3, 500, 30_000, low)).toBe(1000);
    expect(backoffDelay(20, 500, 30_000, low)).toBe(15_000);
    expect(backoffDelay(20, 500, 30_000, high)).toBeLessThanOrEqual(30_000);
  });
});

describe('names', () => {
  it('labels resources as kubectl does and keys objects by namespace/name', () => {
    expect(resourceLabel({ group: 'apps', version: 'v1', resource: 'deployments' })).toBe('deployments.apps');
    expect(resourceLabel({ group: '', version: 'v1', resource: 'pods' })).toBe('pods');
    expect(keyOf({ metadata: { namespace: 'a', name: 'b' } })).toBe('a/b');
    expect(keyOf({ metadata: { name: 'node-1' } })).toBe('/node-1');
  });
});

describe('ListGate', () => {
  it('lets at most `limit` holders in, and hands a freed slot to the next in line', async () => {
    const gate = new ListGate(2);
    const a = await gate.acquire();
    const b = await gate.acquire();
    let third = false;
    const c = gate.acquire().then((release) => {
      third = true;
      return release;
    });
    await Promise.resolve();
    expect(third).toBe(false);
    a();
    a(); // a second release of the same slot changes nothing
    const releaseC = await c;
    expect(third).toBe(true);
    let fourth = false;
    void gate.acquire().then(() => {
      fourth = true;
    });
    await Promise.resolve();
    expect(fourth).toBe(false);
    b();
    await Promise.resolve();
    await Promise.resolve();
    expect(fourth).toBe(true);
    releaseC();
  });
});
