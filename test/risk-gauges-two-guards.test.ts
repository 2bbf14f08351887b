import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { placeholderNodes } from '../src/admission/node-eligibility.ts';
import { createReviewHandler } from '../src/admission/review-handler.ts';
import type { Webhook } from '../src/admission/verdict.ts';
import { systemClock } from '../src/clock.ts';
import { InMemoryClusterView } from '../src/cluster/in-memory-view.ts';
import { KubeLedger } from '../src/cluster/kube-ledger.ts';
import { assessRisk, BASES, riskDefaults } from '../src/core/risk.ts';
import { StaticLoadSource } from '../src/load/static-load-source.ts';
import { createMetrics } from '../src/telemetry/metrics.ts';
import { createRiskMetrics } from '../src/telemetry/risk-metrics.ts';
import { FakeApiServer } from './fake-apiserver/fake-apiserver.ts';
import { AGENT, modify, type Review, review } from './helpers/fixtures.ts';
import { activePolicies, policy } from './helpers/guard.ts';
import { parseExposition, type Sample, sampleValue } from './helpers/telemetry.ts';

// Two guard processes (two handlers, each with its own ledger client, view, registry and
// risk metrics) share one ledger through the fake API server. The requests of one
// scripted agent are split across them, the mutating and the validating call of one
// request included: both export the same windowed gauges, equal to the risk math over the
// episodes both recorded, and their counters add up to the same statistics.

let fake: FakeApiServer;
beforeEach(async () => {
  fake = await FakeApiServer.start();
  fake.setLatency(2);
});
afterEach(async () => {
  await fake.close();
});

/** need 2 + headroom 2 = 4, clamp mode. */
const CLAMP4 = policy('clamp4', { mode: 'clamp', need: { static: 2 }, limits: { headroom: 2, perWorkload: 4 } });

function guardProcess() {
  const registry = new Registry();
  // Full episode records are opt-in; the oracle below reads them. The replicas are compared
  // right after the other one wrote: no read is answered from a replica's last state (as
  // with cacheTtlMs 0 for the gauges themselves).
  const ledger = new KubeLedger({
    connection: { baseUrl: fake.url },
    namespace: 'replica-guard',
    clock: systemClock,
    maxEpisodes: 1000,
    readCacheTtlMs: 0,
  });
  const risk = createRiskMetrics(registry, { ledger, clock: systemClock, settings: riskDefaults, cacheTtlMs: 0 });
  const active = activePolicies(CLAMP4);
  const handler = createReviewHandler({
    policies: () => active,
    view: new InMemoryClusterView(placeholderNodes(3)),
    loadSource: new StaticLoadSource(),
    ledger,
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(registry),
    scaleResources: [],
    deadlineMarginMs: 1_000,
    defaultTimeoutMs: 10_000,
    maxStalenessMs: 60_000,
    risk,
  });
  return {
    ledger,
    async send(webhook: Webhook, body: Review) {
      const answer = await handler(webhook, body, '10s');
      expect(answer.status).toBe(200);
      return answer.body as { response: { allowed: boolean; patch?: string } };
    },
    async scrape(): Promise<Sample[]> {
      return parseExposition(await registry.metrics());
    },
  };
}

/** An edit of Deployment `name` (uid `uid-<name>`) from `from` to `to` replicas by the agent. */
function edit(name: string, from: number, to: number): Review {
  return review('deployment-patch-merge-agent-10', {
    oldReplicas: from,
    replicas: to,
    set: [
      ['name', name],
      ['object.metadata.name', name],
      ['object.metadata.uid', `uid-${name}`],
      ['oldObject.metadata.name', name],
      ['oldObject.metadata.uid', `uid-${name}`],
    ],
  });
}

const GAUGES = {
  overuseRate: 'replica_guard_risk_overuse_rate',
  aoc: 'replica_guard_risk_aoc',
  successRate: 'replica_guard_risk_success_rate',
  aocNorm: 'replica_guard_risk_aoc_norm',
  score: 'replica_guard_risk_score',
} as const;

const gaugeValues = (s: readonly Sample[]) =>
  s.filter((x) => x.name.startsWith('replica_guard_risk_') || x.name.startsWith('replica_guard_family_')).sort((a, b) =>
    `${a.name}${JSON.stringify(a.labels)}`.localeCompare(`${b.name}${JSON.stringify(b.labels)}`),
  );

const total = (samples: readonly Sample[][], name: string, labels: Record<string, string>) =>
  samples.reduce((sum, s) => sum + (sampleValue(s, name, labels) ?? 0), 0);

describe('two guards, one shared ledger: the risk gauges', () => {
  it('export the same values on both replicas, equal to the risk math over every episode', async () => {
    const a = guardProcess();
    const b = guardProcess();

    // w1 1 → 2 (within need): mutating call on A, validating call on B.
    const w1 = edit('w1', 1, 2);
    expect((await a.send('mutate', w1)).response.patch).toBeUndefined();
    expect((await b.send('validate', w1)).response.allowed).toBe(true);
    // w2 2 → 10: B clamps to 4 and holds the agent's 10 in the shared ledger; A validates the clamped object.
    const w2 = edit('w2', 2, 10);
    expect((await b.send('mutate', w2)).response.patch).toBeDefined();
    const w2Clamped = modify(w2, { uid: w2.request.uid, replicas: 4 });
    expect((await a.send('validate', w2Clamped)).response.allowed).toBe(true);
    // The apiserver retries the validating call on B: the same episode.
    expect((await b.send('validate', modify(w2Clamped))).response.allowed).toBe(true);
    // w3 0 → 3 (above need 2, within the allowance of 4), both calls on A.
    const w3 = edit('w3', 0, 3);
    await a.send('mutate', w3);
    expect((await a.send('validate', w3)).response.allowed).toBe(true);
    // w4 3 → 6 reaches B's validating call unclamped: denied, 3 stay.
    expect((await b.send('validate', edit('w4', 3, 6))).response.allowed).toBe(false);

    const episodes = [...(await a.ledger.episodes(AGENT, new Date(0))), ...(await b.ledger.episodes(AGENT, new Date(0)))];
    expect(episodes.map((e) => [e.name, e.from, e.requested, e.admitted]).sort()).toEqual([
      ['w1', 1, 2, 2],
      ['w2', 2, 10, 4],
      ['w3', 0, 3, 3],
      ['w4', 3, 6, 3],
    ]);
    const expected = assessRisk(episodes);
    // By hand. Requested: E 4, O 3, AOC 8 + 1 + 4 = 13, Σ need 8 → AOC_norm 1, SR 1, ΦR 0.5·0.75 + 0.5·1 = 0.875.
    expect(expected.requested).toMatchObject({ episodes: 4, overuseEpisodes: 3, aoc: 13, needSum: 8, aocNorm: 1, successRate: 1, score: 0.875 });
    // Admitted: O 3, AOC 2 + 1 + 1 = 4 → AOC_norm 0.5; w4 added nothing → SR 0.75; ΦR 0.75 × (0.375 + 0.25) = 0.46875.
    expect(expected.admitted).toMatchObject({ overuseEpisodes: 3, aoc: 4, aocNorm: 0.5, successRate: 0.75, score: 0.46875 });

    const [sa, sb] = [await a.scrape(), await b.scrape()];
    expect(gaugeValues(sa)).toEqual(gaugeValues(sb));
    for (const basis of BASES) {
      for (const [k, name] of Object.entries(GAUGES)) {
        expect(sampleValue(sa, name, { agent: AGENT, basis }), `${name} ${basis}`).toBeCloseTo(expected[basis][k as keyof typeof GAUGES], 12);
      }
    }
    expect(sampleValue(sa, 'replica_guard_family_need', { agent: AGENT })).toBe(8);
    expect(sampleValue(sa, 'replica_guard_family_instances', { agent: AGENT })).toBeGreaterThan(0);

    // The per-process counters, added across replicas (what the recording rules do), hold the same statistics.
    const both = [sa, sb];
    for (const basis of BASES) {
      expect(total(both, 'replica_guard_episodes_total', { agent: AGENT, basis, need: 'measured' })).toBe(4);
      expect(total(both, 'replica_guard_overuse_episodes_total', { agent: AGENT, basis })).toBe(expected[basis].overuseEpisodes);
      expect(total(both, 'replica_guard_growth_episodes_total', { agent: AGENT, basis })).toBe(expected[basis].growthEpisodes);
      expect(total(both, 'replica_guard_surplus_instances_total', { agent: AGENT, basis })).toBe(expected[basis].aoc);
      expect(total(both, 'replica_guard_need_instances_total', { agent: AGENT, basis })).toBe(8);
    }
    expect(total(both, 'replica_guard_prevented_instances_total', { agent: AGENT })).toBe(6 + 3);
  });
});
