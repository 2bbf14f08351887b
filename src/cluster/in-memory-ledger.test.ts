import { describe, expect, it } from 'vitest';
import type { Episode } from '../core/episode.ts';
import { InMemoryLedger } from './in-memory-ledger.ts';

const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);

function episode(key: string, ms: number, agent = 'a'): Episode {
  return {
    key,
    agent,
    policy: 'p',
    kind: 'Deployment',
    namespace: 'agents',
    name: 'w',
    from: 1,
    requested: 5,
    admitted: 1,
    need: 3,
    measured: true,
    fallback: false,
    verdict: 'denied',
    at: at(ms),
  };
}

describe('InMemoryLedger', () => {
  it('records an episode once per key within the window, and again after it', async () => {
    const ledger = new InMemoryLedger({ windowMs: 1000, maxEpisodes: 10 });
    expect(await ledger.recordEpisode(episode('k', 0))).toBe(true);
    expect(await ledger.recordEpisode(episode('k', 500))).toBe(false);
    expect(await ledger.recordEpisode(episode('k', 1500))).toBe(true);
    expect((await ledger.episodes('a', at(0))).map((e) => e.at)).toEqual([at(1500)]);
  });

  it('keeps the first requested count under a key: a reinvocation never overwrites it', async () => {
    const ledger = new InMemoryLedger({ windowMs: 1000, maxEpisodes: 10 });
    await ledger.holdRequested('k', 10, at(0));
    await ledger.holdRequested('k', 4, at(10));
    expect(await ledger.requested('k', at(20))).toBe(10);
    expect(await ledger.requested('k', at(2000))).toBeUndefined();
  });

  it('evicts the oldest episodes past its bound and counts them', async () => {
    const ledger = new InMemoryLedger({ windowMs: 10_000, maxEpisodes: 2 });
    for (const [i, key] of ['a', 'b', 'c'].entries()) await ledger.recordEpisode(episode(key, i));
    expect(ledger.evictions).toBe(1);
    expect((await ledger.episodes('a', at(0))).map((e) => e.key)).toEqual(['b', 'c']);
  });

  it("returns one agent's episodes since a time", async () => {
    const ledger = new InMemoryLedger({ windowMs: 10_000, maxEpisodes: 10 });
    await ledger.recordEpisode(episode('1', 0, 'a'));
    await ledger.recordEpisode(episode('2', 100, 'b'));
    await ledger.recordEpisode(episode('3', 200, 'a'));
    expect((await ledger.episodes('a', at(50))).map((e) => e.key)).toEqual(['3']);
  });
});
