import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Episode } from '../core/episode.ts';
import { type AgentLedgerState, emptyState, rateUsed, recordEpisodeKey, reserve } from '../core/ledger-state.ts';
import { InMemoryLedger } from './in-memory-ledger.ts';
import { agentOfEpisodeKey, createLedgerMetrics } from './ledger.ts';

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

const episodeKeyOf = (agent: string, n: number) => JSON.stringify([agent, 'uid-w', 1, n]);

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

  it("keeps a held count in the state of the agent named in the episode key", async () => {
    const ledger = new InMemoryLedger({ windowMs: 60_000, maxEpisodes: 10 });
    const key = episodeKeyOf('system:serviceaccount:agents:a', 5);
    expect(agentOfEpisodeKey(key)).toBe('system:serviceaccount:agents:a');
    await ledger.holdRequested(key, 5, at(0));
    const held = await ledger.transact('system:serviceaccount:agents:a', (s) => ({ result: s.held.length, next: undefined }));
    expect(held).toBe(1);
    const other = await ledger.transact('system:serviceaccount:agents:b', (s) => ({ result: s.held.length, next: undefined }));
    expect(other).toBe(0);
  });

  it('evicts the oldest episode records past its bound and counts them', async () => {
    const registry = new Registry();
    const metrics = createLedgerMetrics(registry);
    const ledger = new InMemoryLedger({ windowMs: 10_000, maxEpisodes: 2, metrics });
    for (const [i, key] of ['a', 'b', 'c'].entries()) await ledger.recordEpisode(episode(key, i));
    expect(ledger.evictions).toBe(1);
    expect((await ledger.episodes('a', at(0))).map((e) => e.key)).toEqual(['b', 'c']);
    expect((await metrics.evictions.get()).values).toEqual([{ labels: { collection: 'episodeRecords' }, value: 1 }]);
  });

  it("returns one agent's episodes since a time", async () => {
    const ledger = new InMemoryLedger({ windowMs: 10_000, maxEpisodes: 10 });
    await ledger.recordEpisode(episode('1', 0, 'a'));
    await ledger.recordEpisode(episode('2', 100, 'b'));
    await ledger.recordEpisode(episode('3', 200, 'a'));
    expect((await ledger.episodes('a', at(50))).map((e) => e.key)).toEqual(['3']);
  });

  it('counts episode keys evicted from the shared state in the evictions metric', async () => {
    const metrics = createLedgerMetrics(new Registry());
    const ledger = new InMemoryLedger({ windowMs: 60_000, maxEpisodes: 100, bounds: { episodeKeys: 2 }, metrics });
    for (let i = 0; i < 5; i++) await ledger.recordEpisode(episode(episodeKeyOf('a', i), i));
    expect((await metrics.evictions.get()).values).toEqual([{ labels: { collection: 'episodeKeys' }, value: 3 }]);
  });

  it('runs the transactions of one agent one after another, in arrival order', async () => {
    const ledger = new InMemoryLedger({ windowMs: 60_000, maxEpisodes: 10 });
    const order = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        ledger.transact('a', (s) => {
          const out = recordEpisodeKey(s, `k${i}`, at(i), ledger.limits);
          return { result: out.state.episodeKeys.length, next: out.state };
        }),
      ),
    );
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it("fails only the caller whose step throws, and keeps that step's changes out", async () => {
    const ledger = new InMemoryLedger({ windowMs: 60_000, maxEpisodes: 10 });
    const write = (k: string) => (s: AgentLedgerState) => ({ result: true, next: recordEpisodeKey(s, k, at(0), ledger.limits).state });
    const results = await Promise.allSettled([
      ledger.transact('a', write('one')),
      ledger.transact('a', () => {
        throw new Error('step failed');
      }),
      ledger.transact('a', write('two')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(await ledger.transact('a', (s) => ({ result: s.episodeKeys.length, next: undefined }))).toBe(2);
  });

  it('never spends the same allowance twice: a burst of concurrent spends admits exactly the rate', async () => {
    for (const [allowance, burst] of [
      [1, 10],
      [4, 30],
      [13, 60],
      [25, 25],
    ] as const) {
      const ledger = new InMemoryLedger({ windowMs: 3_600_000, maxEpisodes: 10 });
      const now = at(0);
      const spend = (i: number) =>
        ledger.transact('a', (s) =>
          rateUsed(s, 300_000, now) < allowance
            ? { result: true, next: reserve(s, { key: `spend-${i}`, workload: 'uid-w', steady: 1, addedInstances: 1 }, now, ledger.limits) }
            : { result: false, next: undefined },
        );
      const outcomes = await Promise.all(Array.from({ length: burst }, (_, i) => spend(i)));
      expect(outcomes.filter(Boolean)).toHaveLength(allowance);
      expect(await ledger.transact('a', (s) => ({ result: rateUsed(s, 300_000, now), next: undefined }))).toBe(allowance);
    }
  });

  it('keeps no full episode records unless asked to, and records episode keys all the same', async () => {
    const ledger = new InMemoryLedger({ windowMs: 10_000, maxEpisodes: 0 });
    expect(await ledger.recordEpisode(episode(episodeKeyOf('a', 1), 0))).toBe(true);
    expect(await ledger.recordEpisode(episode(episodeKeyOf('a', 1), 10))).toBe(false);
    ledger.keepRecord(episode(episodeKeyOf('a', 2), 20));
    expect(await ledger.episodes('a', at(0))).toEqual([]);
    expect(ledger.evictions).toBe(0);
  });

  it("keeps at most maxAgents agents' states, the least recently used out, and counts each eviction", async () => {
    const metrics = createLedgerMetrics(new Registry());
    const ledger = new InMemoryLedger({ windowMs: 60_000, maxEpisodes: 0, maxAgents: 2, metrics });
    const record = (agent: string, n: number) => ledger.recordEpisode(episode(episodeKeyOf(agent, n), n, agent));
    expect(await record('a', 1)).toBe(true);
    expect(await record('b', 1)).toBe(true);
    // A read counts as a use: b is now the least recently used.
    expect(await ledger.transact('a', (s) => ({ result: s.episodeKeys.length, next: undefined }))).toBe(1);
    expect(await record('c', 1)).toBe(true);
    expect([ledger.agents, ledger.evictedAgents]).toEqual([2, 1]);
    expect((await metrics.evictions.get()).values).toEqual([{ labels: { collection: 'agents' }, value: 1 }]);
    // What the bound trades: b's episode keys are gone, so its retry counts as new; a's are kept.
    expect(await record('a', 1)).toBe(false);
    expect(await record('b', 1)).toBe(true);
    expect(await ledger.transact('c', (s) => ({ result: s, next: undefined }))).toBe(emptyState());
  });

  it('forgets an agent whose state becomes empty', async () => {
    const ledger = new InMemoryLedger({ windowMs: 60_000, maxEpisodes: 10 });
    await ledger.transact('a', (s) => ({ result: undefined, next: recordEpisodeKey(s, 'k', at(0), ledger.limits).state }));
    await ledger.transact('a', () => ({ result: undefined, next: emptyState() }));
    expect(await ledger.transact('a', (s) => ({ result: s, next: undefined }))).toBe(emptyState());
  });
});
