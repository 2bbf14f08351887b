import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeLedger, KubeLedgerError, LEDGER_AGENT_ANNOTATION } from '../../src/cluster/kube-ledger.ts';
import type { Episode } from '../../src/core/episode.ts';
import {
  type AgentLedgerState,
  emptyState,
  hasEpisodeKey,
  LEDGER_BOUNDS,
  rateUsed,
  recordEpisodeKey,
  reserve,
  serializeState,
} from '../../src/core/ledger-state.ts';
import { GuardError } from '../../src/errors.ts';
import { FakeApiServer, MAX_CONFIGMAP_DATA_BYTES } from '../fake-apiserver/fake-apiserver.ts';
import { capturingLogger } from '../helpers/telemetry.ts';
import {
  AGENT,
  CM,
  counterValue,
  guardLedger,
  histogramTotals,
  ledgerRequests,
  NS,
  storedConfigMap,
  storedState,
  writeBehindTheBack,
} from './ledger-fixtures.ts';

// The shared ledger against the fake API server: the compare-and-swap protocol, batching
// and the failure paths, as one or two guard processes would meet them.

let fake: FakeApiServer;
beforeEach(async () => {
  fake = await FakeApiServer.start();
});
afterEach(async () => {
  await fake.close();
});

function guard(options: Parameters<typeof guardLedger>[1] = {}) {
  const g = guardLedger(fake, options);
  return g;
}

const now = new Date();
const W = 5 * 60_000;
const addKey = (ledger: KubeLedger, key: string) =>
  ledger.transact(AGENT, (s) => {
    const out = recordEpisodeKey(s, key, now, ledger.limits);
    return { result: out.isNew, next: out.isNew ? out.state : undefined };
  });
const spendOne = (ledger: KubeLedger, key: string) => (s: AgentLedgerState) => ({
  result: rateUsed(s, W, now),
  next: reserve(s, { key, workload: 'uid-w', steady: 1, addedInstances: 1 }, now, ledger.limits),
});

describe('KubeLedger against the fake API server', () => {
  it("creates the agent's ConfigMap on the first write, labelled and annotated for humans", async () => {
    const { ledger } = guard();
    expect(await addKey(ledger, 'k1')).toBe(true);
    expect(ledgerRequests(fake)).toEqual(['GET', 'POST']);
    const cm = storedConfigMap(fake);
    expect(cm.metadata.name).toBe(CM);
    expect(cm.metadata).toMatchObject({
      namespace: NS,
      labels: { 'app.kubernetes.io/name': 'replica-guard', 'app.kubernetes.io/component': 'ledger' },
      annotations: { [LEDGER_AGENT_ANNOTATION]: AGENT },
    });
    expect(cm.data.agent).toBe(AGENT);
    expect(JSON.parse(cm.data.state ?? '')).toMatchObject({ version: 1 });
    expect(hasEpisodeKey(storedState(fake), 'k1', now, ledger.limits)).toBe(true);

    // The next write starts from the object the create answered: no read before it.
    expect(await addKey(ledger, 'k2')).toBe(true);
    expect(ledgerRequests(fake)).toEqual(['GET', 'POST', 'PUT']);
  });

  it('only reads when a transaction has nothing to write', async () => {
    const { ledger, metrics } = guard();
    const seen = await ledger.transact(AGENT, (s) => ({ result: s, next: undefined }));
    expect(seen).toBe(emptyState());
    expect(ledgerRequests(fake)).toEqual(['GET']);
    expect(fake.get('configmaps', NS, CM)).toBeUndefined();
    expect((await histogramTotals(metrics.writeDuration, { outcome: 'unchanged' })).count).toBe(1);
  });

  it('answers a transaction that writes nothing from its last state within readCacheTtl, and reads again past it', async () => {
    let t = 0;
    const clock = { now: () => now, monotonicMs: () => t };
    const { ledger, metrics } = guard({ clock, readCacheTtlMs: 1000 });
    await addKey(ledger, 'k0');
    fake.requests.length = 0;
    t = 1000;
    expect(await ledger.transact(AGENT, (s) => ({ result: hasEpisodeKey(s, 'k0', now, ledger.limits), next: undefined }))).toBe(true);
    expect(ledgerRequests(fake)).toEqual([]);
    expect((await histogramTotals(metrics.writeDuration, { outcome: 'cached' })).count).toBe(1);
    // Another replica writes; past the TTL the read-only answer includes it.
    writeBehindTheBack(fake, recordEpisodeKey(storedState(fake), 'theirs', now, ledger.limits).state);
    t = 2001;
    expect(await ledger.transact(AGENT, (s) => ({ result: hasEpisodeKey(s, 'theirs', now, ledger.limits), next: undefined }))).toBe(true);
    expect(ledgerRequests(fake)).toEqual(['GET']);
  });

  it('reads before every transaction that writes nothing when readCacheTtl is 0', async () => {
    const { ledger } = guard({ readCacheTtlMs: 0 });
    await addKey(ledger, 'k0');
    fake.requests.length = 0;
    await ledger.transact(AGENT, () => ({ result: undefined, next: undefined }));
    await ledger.transact(AGENT, () => ({ result: undefined, next: undefined }));
    expect(ledgerRequests(fake)).toEqual(['GET', 'GET']);
  });

  it('re-runs the transaction on the fresh state when another writer got there first (409)', async () => {
    const { ledger, metrics } = guard();
    await addKey(ledger, 'k0');
    let runs = 0;
    const usedSeen = await ledger.transact(AGENT, (s) => {
      runs++;
      // The other guard spends one instance between this read and this write.
      if (runs === 1) writeBehindTheBack(fake, reserve(s, { key: 'theirs', workload: 'uid-w', steady: 1, addedInstances: 1 }, now, ledger.limits));
      return spendOne(ledger, 'mine')(s);
    });
    expect(runs).toBe(2);
    expect(usedSeen).toBe(1); // the re-run saw the other guard's reservation
    expect(rateUsed(storedState(fake), W, now)).toBe(2);
    // The first run started from this process's last write; the refused PUT sent it to read.
    expect(ledgerRequests(fake)).toEqual(['GET', 'POST', 'PUT', 'GET', 'PUT']);
    expect(await counterValue(metrics.conflicts)).toBe(1);
    expect(await counterValue(metrics.conflictsExhausted)).toBe(0);
  });

  it('denies with RG_ERR_LEDGER_CONFLICT when the retries run out', async () => {
    const { ledger, metrics } = guard({ maxAttempts: 3 });
    await addKey(ledger, 'k0');
    fake.requests.length = 0;
    let n = 0;
    const err: unknown = await ledger
      .transact(AGENT, (s) => {
        writeBehindTheBack(fake, recordEpisodeKey(s, `other-${n++}`, now, ledger.limits).state);
        return spendOne(ledger, 'mine')(s);
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GuardError);
    expect((err as GuardError).code).toBe('RG_ERR_LEDGER_CONFLICT');
    expect((err as GuardError).status).toBe(200);
    expect(ledgerRequests(fake)).toEqual(['PUT', 'GET', 'PUT', 'GET', 'PUT']);
    expect(rateUsed(storedState(fake), W, now)).toBe(0);
    expect(await counterValue(metrics.conflicts)).toBe(3);
    expect(await counterValue(metrics.conflictsExhausted)).toBe(1);
    expect((await histogramTotals(metrics.writeDuration, { outcome: 'exhausted' })).count).toBe(1);
  });

  it('retries a create that lost the race (409 AlreadyExists) as an update', async () => {
    const { ledger } = guard();
    let runs = 0;
    await ledger.transact(AGENT, (s) => {
      if (runs++ === 0) writeBehindTheBack(fake, recordEpisodeKey(s, 'theirs', now, ledger.limits).state);
      return { result: undefined, next: recordEpisodeKey(s, 'mine', now, ledger.limits).state };
    });
    expect(ledgerRequests(fake)).toEqual(['GET', 'POST', 'GET', 'PUT']);
    const state = storedState(fake);
    expect(hasEpisodeKey(state, 'theirs', now, ledger.limits) && hasEpisodeKey(state, 'mine', now, ledger.limits)).toBe(true);
  });

  it('creates the ConfigMap again when it was deleted between the read and the write', async () => {
    const { ledger } = guard();
    await addKey(ledger, 'k0');
    fake.requests.length = 0;
    let runs = 0;
    await ledger.transact(AGENT, (s) => {
      if (runs++ === 0) fake.remove('configmaps', NS, CM);
      return { result: undefined, next: recordEpisodeKey(s, 'k1', now, ledger.limits).state };
    });
    expect(ledgerRequests(fake)).toEqual(['PUT', 'GET', 'POST']);
    expect(hasEpisodeKey(storedState(fake), 'k1', now, ledger.limits)).toBe(true);
  });

  it('batches a burst: transactions arriving while a round is in flight share the next PUT', async () => {
    const { ledger, metrics } = guard();
    await addKey(ledger, 'warm-up');
    fake.requests.length = 0;
    const first = addKey(ledger, 'k0');
    await new Promise((resolve) => setImmediate(resolve));
    const rest = Array.from({ length: 49 }, (_, i) => addKey(ledger, `k${i + 1}`));
    const results = await Promise.all([first, ...rest]);
    expect(results.every((r) => r === true)).toBe(true);
    expect(ledgerRequests(fake)).toEqual(['PUT', 'PUT']);
    expect(storedState(fake).episodeKeys).toHaveLength(51);
    const batches = await histogramTotals(metrics.batchSize);
    expect(batches).toEqual({ sum: 51, count: 3 });
    // Each caller gets its own answer: the same key twice in one batch is new only once.
    const twice = await Promise.all([addKey(ledger, 'dup'), addKey(ledger, 'dup')]);
    expect(twice).toEqual([true, false]);
  });

  it("fails only the caller whose step throws, and keeps that step's changes out of the batch", async () => {
    const { ledger } = guard();
    const results = await Promise.allSettled([
      addKey(ledger, 'a'),
      ledger.transact(AGENT, () => {
        throw new Error('step failed');
      }),
      addKey(ledger, 'b'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(storedState(fake).episodeKeys).toHaveLength(2);
  });

  it('reads an unreadable ledger as empty, says so once, and replaces it on the next write', async () => {
    const { logger, lines } = capturingLogger();
    const { ledger } = guard({ logger });
    fake.put('configmaps', { metadata: { name: CM, namespace: NS }, data: { agent: AGENT, state: '{"version": "banana"' } });
    expect(await ledger.transact(AGENT, (s) => ({ result: s, next: undefined }))).toBe(emptyState());
    expect(await addKey(ledger, 'k1')).toBe(true);
    expect(lines.filter((l) => l.msg === 'the ledger ConfigMap held unreadable data; it was read as far as possible')).toHaveLength(1);
    expect(storedState(fake).episodeKeys).toHaveLength(1);
  });

  it("refuses a ConfigMap that holds another agent's ledger", async () => {
    const { ledger } = guard();
    fake.put('configmaps', { metadata: { name: CM, namespace: NS }, data: { agent: 'someone-else', state: serializeState(emptyState()) } });
    await expect(addKey(ledger, 'k1')).rejects.toBeInstanceOf(KubeLedgerError);
  });

  it('writes the worst-case state within what the API server accepts', async () => {
    const { ledger } = guard();
    const id = (i: number) => `#${String(i).padStart(40, 'x')}`;
    const time = 8.64e15;
    const big = 2_147_483_647;
    const minute = time / 60_000;
    const worst: AgentLedgerState = {
      version: 1,
      held: Array.from({ length: LEDGER_BOUNDS.held }, (_, i) => ({ key: id(i), requested: big, at: time })),
      episodeKeys: Array.from({ length: LEDGER_BOUNDS.episodeKeys }, (_, i) => ({ key: id(i), at: time })),
      provenance: Array.from({ length: LEDGER_BOUNDS.provenance }, (_, i) => ({ uid: id(i), at: time })),
      reservations: Array.from({ length: LEDGER_BOUNDS.reservations }, (_, i) => ({
        key: id(i),
        workload: id(i),
        steady: big,
        addedInstances: big,
        at: time,
        expiresAt: time,
      })),
      rate: Array.from({ length: LEDGER_BOUNDS.buckets }, (_, i) => ({ minute: minute - i, instances: Number.MAX_SAFE_INTEGER })).reverse(),
      losses: Array.from({ length: LEDGER_BOUNDS.losses }, (_, i) => ({ uid: id(i), at: time })),
      lossBuckets: Array.from({ length: LEDGER_BOUNDS.buckets }, (_, i) => ({ minute: minute - i, instances: Number.MAX_SAFE_INTEGER })).reverse(),
      evictions: emptyState().evictions,
    };
    await ledger.transact(AGENT, () => ({ result: undefined, next: worst }));
    const stored = storedConfigMap(fake).data.state ?? '';
    expect(Buffer.byteLength(stored)).toBeLessThan(MAX_CONFIGMAP_DATA_BYTES / 2);
    expect(storedState(fake).reservations).toHaveLength(LEDGER_BOUNDS.reservations);
  });

  it('shares held requests and episode keys between two guard processes', async () => {
    // Full records are opt-in: this test reads them to see that only one process kept one.
    const a = guard({ maxEpisodes: 100 }).ledger;
    const b = guard({ maxEpisodes: 100 }).ledger;
    const key = JSON.stringify([AGENT, 'uid-w', 1, 10]);
    // The mutating call reached one replica, the validating call another.
    await a.holdRequested(key, 10, now);
    await b.holdRequested(key, 4, now); // a reinvocation elsewhere never overwrites
    expect(await b.requested(key, now)).toBe(10);
    const episode: Episode = {
      key,
      agent: AGENT,
      policy: 'p',
      kind: 'Deployment',
      namespace: 'agents',
      name: 'w',
      from: 1,
      requested: 10,
      admitted: 4,
      need: 3,
      measured: true,
      fallback: false,
      verdict: 'clamped',
      at: now,
    };
    const recorded = await Promise.all([a.recordEpisode(episode), b.recordEpisode(episode), a.recordEpisode(episode)]);
    expect(recorded.filter(Boolean)).toHaveLength(1);
    const kept = [...(await a.episodes(AGENT, new Date(0))), ...(await b.episodes(AGENT, new Date(0)))];
    expect(kept).toHaveLength(1);
  });
});
