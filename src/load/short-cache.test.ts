import { describe, expect, it } from 'vitest';
import { testClock } from '../../test/helpers/telemetry.ts';
import { ShortCache } from './short-cache.ts';

/** A load whose answers the test releases by hand, counting calls and recording its signals. */
function manualLoad<T>() {
  const pending: { resolve: (value: T) => void; signal: AbortSignal }[] = [];
  return {
    calls: () => pending.length,
    pending,
    load: (signal: AbortSignal) =>
      new Promise<T>((resolve) => {
        pending.push({ resolve, signal });
      }),
    release(index: number, value: T) {
      const p = pending[index];
      if (!p) throw new Error(`no call ${index}`);
      p.resolve(value);
    },
  };
}

const NEVER = new AbortController().signal;

describe('ShortCache', () => {
  it('shares one load among callers that arrive while it is in flight', async () => {
    const cache = new ShortCache<number>({ clock: testClock() });
    const m = manualLoad<number>();
    const answers = Array.from({ length: 20 }, () => cache.get('q', NEVER, m.load, () => 5_000));
    expect(m.calls()).toBe(1);
    m.release(0, 42);
    const values = await Promise.all(answers);
    expect(values.every((a) => 'value' in a && a.value === 42)).toBe(true);
    expect(values.filter((a) => 'cached' in a && a.cached)).toHaveLength(0);
  });

  it('answers from the cache until the TTL passes on the clock, then loads again', async () => {
    const clock = testClock();
    const cache = new ShortCache<string>({ clock });
    let calls = 0;
    const load = async () => `answer ${++calls}`;
    expect(await cache.get('q', NEVER, load, () => 5_000)).toEqual({ value: 'answer 1', cached: false });
    clock.advance(4_999);
    expect(await cache.get('q', NEVER, load, () => 5_000)).toEqual({ value: 'answer 1', cached: true });
    clock.advance(1);
    expect(await cache.get('q', NEVER, load, () => 5_000)).toEqual({ value: 'answer 2', cached: false });
    expect(calls).toBe(2);
  });

  it('keeps each answer for the TTL its value asks for, and nothing for 0', async () => {
    const clock = testClock();
    const cache = new ShortCache<'ok' | 'failed' | 'uncached'>({ clock });
    const ttl = (v: 'ok' | 'failed' | 'uncached') => ({ ok: 5_000, failed: 1_000, uncached: 0 })[v];
    let calls = 0;
    const answer = (v: 'ok' | 'failed' | 'uncached') => async () => {
      calls += 1;
      return v;
    };
    await cache.get('a', NEVER, answer('failed'), ttl);
    await cache.get('b', NEVER, answer('ok'), ttl);
    await cache.get('c', NEVER, answer('uncached'), ttl);
    await cache.get('c', NEVER, answer('uncached'), ttl);
    expect(calls).toBe(4);
    clock.advance(1_000);
    await cache.get('a', NEVER, answer('failed'), ttl);
    await cache.get('b', NEVER, answer('ok'), ttl);
    expect(calls).toBe(5);
  });

  it('keys are independent', async () => {
    const cache = new ShortCache<string>({ clock: testClock() });
    const a = await cache.get('a', NEVER, async () => 'A', () => 1_000);
    const b = await cache.get('b', NEVER, async () => 'B', () => 1_000);
    expect([a, b]).toEqual([
      { value: 'A', cached: false },
      { value: 'B', cached: false },
    ]);
  });

  it('lets a caller leave at its deadline without failing the others waiting for the same load', async () => {
    const cache = new ShortCache<number>({ clock: testClock() });
    const m = manualLoad<number>();
    const early = new AbortController();
    const first = cache.get('q', early.signal, m.load, () => 5_000);
    const second = cache.get('q', NEVER, m.load, () => 5_000);
    early.abort();
    expect(await first).toEqual({ aborted: true });
    expect(m.pending[0]?.signal.aborted).toBe(false);
    m.release(0, 7);
    expect(await second).toEqual({ value: 7, cached: false });
    expect(await cache.get('q', NEVER, m.load, () => 5_000)).toEqual({ value: 7, cached: true });
  });

  it('aborts the load once every caller has left, caches nothing from it, and starts afresh', async () => {
    const cache = new ShortCache<number>({ clock: testClock() });
    const m = manualLoad<number>();
    const a = new AbortController();
    const b = new AbortController();
    const first = cache.get('q', a.signal, m.load, () => 5_000);
    const second = cache.get('q', b.signal, m.load, () => 5_000);
    a.abort();
    b.abort();
    expect(await Promise.all([first, second])).toEqual([{ aborted: true }, { aborted: true }]);
    expect(m.pending[0]?.signal.aborted).toBe(true);
    m.release(0, 1);
    const third = cache.get('q', NEVER, m.load, () => 5_000);
    expect(m.calls()).toBe(2);
    m.release(1, 2);
    expect(await third).toEqual({ value: 2, cached: false });
  });

  it('answers aborted at once for a signal that already fired, without loading', async () => {
    const cache = new ShortCache<number>({ clock: testClock() });
    const m = manualLoad<number>();
    expect(await cache.get('q', AbortSignal.abort(), m.load, () => 5_000)).toEqual({ aborted: true });
    expect(m.calls()).toBe(0);
  });

  it('keeps at most maxEntries, dropping the oldest', async () => {
    const cache = new ShortCache<string>({ clock: testClock(), maxEntries: 2 });
    let calls = 0;
    const load = async () => `v${++calls}`;
    for (const key of ['a', 'b', 'c']) await cache.get(key, NEVER, load, () => 60_000);
    expect(cache.size).toBe(2);
    expect(await cache.get('c', NEVER, load, () => 60_000)).toMatchObject({ cached: true });
    expect(await cache.get('a', NEVER, load, () => 60_000)).toMatchObject({ cached: false });
  });

  it('passes a rejection to the callers and does not cache it', async () => {
    const cache = new ShortCache<number>({ clock: testClock() });
    await expect(cache.get('q', NEVER, async () => Promise.reject(new Error('boom')), () => 5_000)).rejects.toThrow('boom');
    await expect(
      cache.get(
        'q',
        NEVER,
        () => {
          throw new Error('sync boom');
        },
        () => 5_000,
      ),
    ).rejects.toThrow('sync boom');
    expect(await cache.get('q', NEVER, async () => 3, () => 5_000)).toEqual({ value: 3, cached: false });
  });
});
