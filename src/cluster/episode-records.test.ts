import { describe, expect, it } from 'vitest';
import type { Episode } from '../core/episode.ts';
import { EpisodeRecords } from './episode-records.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function episode(key: string, atMs: number): Episode {
  return {
    key,
    agent: 'system:serviceaccount:agents:a',
    policy: 'p',
    kind: 'Deployment',
    namespace: 'agents',
    name: key,
    from: 1,
    requested: 2,
    admitted: 2,
    need: 2,
    measured: true,
    fallback: false,
    verdict: 'allowed',
    at: new Date(atMs),
  };
}

const keys = (r: EpisodeRecords) => [...r.values()].map((e) => e.key);
const HOUR = 3_600_000;

describe('EpisodeRecords', () => {
  it('keeps at most the bound, dropping the oldest first and saying how many', () => {
    const r = new EpisodeRecords(3);
    expect(r.remember(episode('a', T0), HOUR)).toBe(0);
    r.remember(episode('b', T0 + 1), HOUR);
    r.remember(episode('c', T0 + 2), HOUR);
    expect(r.remember(episode('d', T0 + 3), HOUR)).toBe(1);
    expect(keys(r)).toEqual(['b', 'c', 'd']);
    expect(r.size).toBe(3);
  });

  it('treats a record kept again under its key as the newest', () => {
    const r = new EpisodeRecords(3);
    for (const k of ['a', 'b', 'c']) r.remember(episode(k, T0), HOUR);
    r.remember(episode('a', T0 + 5), HOUR);
    expect(keys(r)).toEqual(['b', 'c', 'a']);
    r.remember(episode('d', T0 + 6), HOUR);
    expect(keys(r)).toEqual(['c', 'a', 'd']);
    expect([...r.values()].find((e) => e.key === 'a')?.at.getTime()).toBe(T0 + 5);
  });

  it('drops records older than the window before the new one, without counting them as evicted', () => {
    const r = new EpisodeRecords(10);
    r.remember(episode('old', T0), HOUR);
    r.remember(episode('recent', T0 + HOUR / 2), HOUR);
    expect(r.remember(episode('now', T0 + HOUR + 1), HOUR)).toBe(0);
    expect(keys(r)).toEqual(['recent', 'now']);
  });

  it('stays exact over many evictions and replacements, as a plain list would', () => {
    const max = 500;
    const r = new EpisodeRecords(max);
    const model: string[] = [];
    let evicted = 0;
    let modelEvicted = 0;
    for (let i = 0; i < 20_000; i++) {
      // Every seventh record re-keeps one of the recent keys: it moves to the end.
      const key = i % 7 === 0 && model.length > 10 ? (model[model.length - 10] ?? `k${i}`) : `k${i}`;
      evicted += r.remember(episode(key, T0 + i), HOUR);
      const at = model.indexOf(key);
      if (at >= 0) model.splice(at, 1);
      model.push(key);
      while (model.length > max) {
        model.shift();
        modelEvicted++;
      }
    }
    expect(keys(r)).toEqual(model);
    expect(r.size).toBe(max);
    expect(evicted).toBe(modelEvicted);
  });
});
