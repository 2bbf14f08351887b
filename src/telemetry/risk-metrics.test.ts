import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseExposition, type Sample, sampleValue, testClock, waitFor } from '../../test/helpers/telemetry.ts';
import { activePolicies, policy } from '../../test/helpers/guard.ts';
import { AGENT, modify, review, type Review } from '../../test/helpers/fixtures.ts';
import { placeholderNodes } from '../admission/node-eligibility.ts';
import { createReviewHandler } from '../admission/review-handler.ts';
import type { Webhook } from '../admission/verdict.ts';
import { InMemoryLedger } from '../cluster/in-memory-ledger.ts';
import { InMemoryClusterView } from '../cluster/in-memory-view.ts';
import { configSchema, riskSettingsOf } from '../config.ts';
import { assessRisk, BASES, type RiskSettings, riskDefaults } from '../core/risk.ts';
import type { LoadSource } from '../load/load-source.ts';
import { StaticLoadSource } from '../load/static-load-source.ts';
import { createMetrics } from './metrics.ts';
import { createRiskMetrics, OTHER_AGENTS } from './risk-metrics.ts';
import { pino } from 'pino';

const AGENT_2 = 'system:serviceaccount:agents:agent-2';

interface RigOptions {
  readonly policies: string;
  readonly maxAgents?: number;
  readonly cacheTtlMs?: number;
  readonly loadSource?: LoadSource;
  readonly settings?: Partial<RiskSettings>;
  readonly deadlineMarginMs?: number;
}

/** One guard process: the review handler with risk metrics, an in-memory ledger and a clock the test moves. */
function rig(options: RigOptions) {
  const registry = new Registry();
  const clock = testClock();
  const ledger = new InMemoryLedger({ windowMs: 3_600_000, maxEpisodes: 10_000 });
  const risk = createRiskMetrics(registry, {
    ledger,
    clock,
    settings: { ...riskDefaults, ...options.settings },
    maxAgents: options.maxAgents,
    cacheTtlMs: options.cacheTtlMs ?? 0,
  });
  const active = activePolicies(options.policies);
  const handler = createReviewHandler({
    policies: () => active,
    view: new InMemoryClusterView(placeholderNodes(3)),
    loadSource: options.loadSource ?? new StaticLoadSource(),
    ledger,
    clock,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(registry),
    scaleResources: [],
    deadlineMarginMs: options.deadlineMarginMs ?? 1_000,
    defaultTimeoutMs: 10_000,
    maxStalenessMs: 60_000,
    risk,
  });
  const send = async (webhook: Webhook, body: Review, timeout = '10s') => {
    const answer = await handler(webhook, body, timeout);
    expect(answer.status).toBe(200);
    return answer;
  };
  const scrape = async (): Promise<Sample[]> => parseExposition(await registry.metrics());
  return { registry, clock, ledger, risk, send, scrape };
}

/**
 * An edit of Deployment `name` (uid `uid-<name>`) from `from` to `to` replicas by `agent`,
 * its pods running as the agent's own service account.
 */
function scale(name: string, from: number, to: number, agent = AGENT, extra: Parameters<typeof modify>[1] = {}): Review {
  const account = agent.split(':').at(-1) ?? '';
  return review('deployment-patch-merge-agent-10', {
    oldReplicas: from,
    replicas: to,
    userInfo: { username: agent, groups: ['system:serviceaccounts', 'system:authenticated'] },
    set: [
      ['name', name],
      ...(['object', 'oldObject'] as const).flatMap((o) => [
        [[o, 'metadata', 'name'], name] as const,
        [[o, 'metadata', 'uid'], `uid-${name}`] as const,
        [[o, 'spec', 'template', 'spec', 'serviceAccountName'], account] as const,
        [[o, 'spec', 'template', 'spec', 'serviceAccount'], account] as const,
      ]),
    ],
    ...extra,
  });
}

/** Every counter of the agent and basis as a plain object, for one-line comparisons. */
function counters(samples: readonly Sample[], agent: string, basis: 'requested' | 'admitted') {
  const v = (name: string, labels: Record<string, string>) => sampleValue(samples, name, labels) ?? 0;
  return {
    measured: v('replica_guard_episodes_total', { agent, basis, need: 'measured' }),
    fallback: v('replica_guard_episodes_total', { agent, basis, need: 'fallback' }),
    unmeasured: v('replica_guard_episodes_total', { agent, basis, need: 'unmeasured' }),
    overuse: v('replica_guard_overuse_episodes_total', { agent, basis }),
    growth: v('replica_guard_growth_episodes_total', { agent, basis }),
    surplus: v('replica_guard_surplus_instances_total', { agent, basis }),
    need: v('replica_guard_need_instances_total', { agent, basis }),
  };
}

const GAUGES = {
  overuseRate: 'replica_guard_risk_overuse_rate',
  aoc: 'replica_guard_risk_aoc',
  successRate: 'replica_guard_risk_success_rate',
  aocNorm: 'replica_guard_risk_aoc_norm',
  score: 'replica_guard_risk_score',
} as const;

function gauges(samples: readonly Sample[], agent: string, basis: 'requested' | 'admitted') {
  const out: Record<string, number | undefined> = {};
  for (const [k, name] of Object.entries(GAUGES)) out[k] = sampleValue(samples, name, { agent, basis });
  return out;
}

/** need 3, enforce, nothing above need: every scale past 3 is denied. */
const ENFORCE_AT_NEED = policy('at-need', { mode: 'enforce', need: { static: 3 }, limits: { perWorkload: 20 } });
/** need 2 + headroom 2 = 4, clamp mode. */
const CLAMP4 = policy('clamp4', { mode: 'clamp', need: { static: 2 }, limits: { headroom: 2, perWorkload: 4 } });
/** need 3, audit: everything passes, so admitted = requested. */
const AUDIT = policy('watch', { mode: 'audit', need: { static: 3 }, limits: { perWorkload: 20 } });

describe('risk counters', () => {
  it('move once per episode key: mutate + validate, retries and dry runs add nothing more', async () => {
    const g = rig({ policies: ENFORCE_AT_NEED });
    const body = scale('web', 2, 10);
    await g.send('mutate', body);
    // The mutating call alone records no episode.
    expect(counters(await g.scrape(), AGENT, 'requested').measured).toBe(0);
    await g.send('validate', body);
    const once = await g.scrape();
    // Requested 10 against need 3: overuse, surplus 7. Denied: admitted stays at 2, below need.
    expect(counters(once, AGENT, 'requested')).toEqual({ measured: 1, fallback: 0, unmeasured: 0, overuse: 1, growth: 1, surplus: 7, need: 3 });
    expect(counters(once, AGENT, 'admitted')).toEqual({ measured: 1, fallback: 0, unmeasured: 0, overuse: 0, growth: 0, surplus: 0, need: 3 });
    expect(sampleValue(once, 'replica_guard_prevented_instances_total', { agent: AGENT })).toBe(8);

    // The agent's retry loop, the apiserver's retry under a new resourceVersion, and dry runs.
    for (let i = 0; i < 3; i++) await g.send('validate', modify(body));
    await g.send('validate', modify(body, { resourceVersion: '999' }));
    await g.send('validate', modify(scale('web', 2, 10), { dryRun: true }));
    await g.send('validate', modify(scale('other-web', 1, 9), { dryRun: true }));
    const after = await g.scrape();
    for (const basis of BASES) expect(counters(after, AGENT, basis)).toEqual(counters(once, AGENT, basis));
    expect(sampleValue(after, 'replica_guard_prevented_instances_total', { agent: AGENT })).toBe(8);
    // Nothing is counted for a dry-run-only workload, under any label.
    expect(after.filter((s) => s.name === 'replica_guard_episodes_total' && s.labels.agent !== AGENT)).toEqual([]);
  });

  it("count a clamp with the agent's own request and what passed: admitted surplus is bounded by the headroom", async () => {
    const g = rig({ policies: CLAMP4 });
    const original = scale('web', 2, 10);
    await g.send('mutate', original);
    // The apiserver sends the validating call the clamped object, under the same uid.
    await g.send('validate', modify(original, { uid: original.request.uid, replicas: 4 }));
    const s = await g.scrape();
    expect(counters(s, AGENT, 'requested')).toMatchObject({ measured: 1, overuse: 1, surplus: 8, need: 2 });
    // 4 against need 2: overuse all the same (tolerance 0), by at most the headroom of 2.
    expect(counters(s, AGENT, 'admitted')).toMatchObject({ measured: 1, overuse: 1, growth: 1, surplus: 2, need: 2 });
    expect(sampleValue(s, 'replica_guard_prevented_instances_total', { agent: AGENT })).toBe(6);
  });

  it('count fallback and unmeasured episodes under their own label, outside the overuse counters', async () => {
    const down: LoadSource = { need: async () => ({ kind: 'unavailable', reason: 'the load source is down' }) };
    const fb = rig({ policies: policy('hold', { mode: 'enforce', need: { onUnavailable: 'hold' }, limits: { perWorkload: 20 } }), loadSource: down });
    await fb.send('validate', scale('web', 2, 10));
    const a = await fb.scrape();
    expect(counters(a, AGENT, 'requested')).toEqual({ measured: 0, fallback: 1, unmeasured: 0, overuse: 0, growth: 0, surplus: 0, need: 0 });
    expect(counters(a, AGENT, 'admitted').fallback).toBe(1);
    expect(sampleValue(a, 'replica_guard_overuse_episodes_total', { agent: AGENT, basis: 'requested' })).toBeUndefined();
    // Held at the current count (2): denied, and the 8 it kept out count as prevented.
    expect(sampleValue(a, 'replica_guard_prevented_instances_total', { agent: AGENT })).toBe(8);

    const um = rig({ policies: policy('caps', { mode: 'enforce', limits: { perWorkload: 20 } }) });
    await um.send('validate', scale('web', 2, 10));
    expect(counters(await um.scrape(), AGENT, 'admitted')).toEqual({ measured: 0, fallback: 0, unmeasured: 1, overuse: 0, growth: 0, surplus: 0, need: 0 });
    // The gauges leave them out too: no measured episode, every ratio 0.
    expect(gauges(await um.scrape(), AGENT, 'requested')).toEqual({ overuseRate: 0, aoc: 0, successRate: 0, aocNorm: 0, score: 0 });
  });

  it('count an episode recorded by the deadline fallback once, as a fallback', async () => {
    // A load source that answers only when the deadline has passed.
    const slow: LoadSource = {
      need: (_query, signal) =>
        new Promise((resolve) => signal.addEventListener('abort', () => resolve({ kind: 'unavailable', reason: 'aborted' }))),
    };
    const g = rig({ policies: ENFORCE_AT_NEED, loadSource: slow, deadlineMarginMs: 950 });
    await g.send('validate', scale('web', 2, 10), '1s');
    // Recorded after the answer (the ledger may be what is slow): wait for it.
    await waitFor(async () => counters(await g.scrape(), AGENT, 'requested').fallback === 1, 'the fallback episode');
    await g.send('validate', scale('web', 2, 10), '1s');
    await new Promise((r) => setTimeout(r, 50));
    const s = await g.scrape();
    expect(counters(s, AGENT, 'requested')).toEqual({ measured: 0, fallback: 1, unmeasured: 0, overuse: 0, growth: 0, surplus: 0, need: 0 });
    expect(sampleValue(s, 'replica_guard_prevented_instances_total', { agent: AGENT })).toBe(8);
    expect(await g.ledger.episodes(AGENT, new Date(0))).toHaveLength(1);
  });

  it('fold agents past the cap into `other`, the first ones keeping their label for the life of the process', async () => {
    const g = rig({ policies: AUDIT, maxAgents: 1 });
    await g.send('validate', scale('web-1', 3, 6, AGENT));
    await g.send('validate', scale('web-2', 3, 6, AGENT_2));
    await g.send('validate', scale('web-3', 3, 9, AGENT_2));
    await g.send('validate', scale('web-4', 3, 4, AGENT));
    expect(g.risk.agentLabel(AGENT)).toBe(AGENT);
    expect(g.risk.agentLabel(AGENT_2)).toBe(OTHER_AGENTS);
    const s = await g.scrape();
    expect(counters(s, AGENT, 'requested')).toMatchObject({ measured: 2, overuse: 2, surplus: 4 });
    expect(counters(s, OTHER_AGENTS, 'requested')).toMatchObject({ measured: 2, overuse: 2, surplus: 9 });
    const agents = new Set(s.filter((x) => x.name.startsWith('replica_guard_') && x.labels.agent !== undefined).map((x) => x.labels.agent));
    expect([...agents].sort()).toEqual([OTHER_AGENTS, AGENT].sort());
    // The gauge of `other` is the risk of the folded agents' episodes together.
    const folded = assessRisk((await g.ledger.episodes(AGENT_2, new Date(0))).slice());
    expect(gauges(s, OTHER_AGENTS, 'requested')).toEqual({
      overuseRate: folded.requested.overuseRate,
      aoc: folded.requested.aoc,
      successRate: folded.requested.successRate,
      aocNorm: folded.requested.aocNorm,
      score: folded.requested.score,
    });
  });
});

describe('risk gauges', () => {
  it("equal risk.ts's result over the same episodes, on both bases, with the family's size and need", async () => {
    const g = rig({ policies: CLAMP4 });
    // Creates, scale-ups within need, clamped ones, one denied (past what can be clamped), retries.
    const steps: [string, number, number][] = [
      ['a', 1, 2],
      ['b', 0, 10],
      ['c', 2, 3],
      ['a', 2, 9],
      ['d', 3, 3],
    ];
    for (const [name, from, to] of steps) {
      const body = scale(name, from, to);
      const mutated = await g.send('mutate', body);
      const patched = 'response' in mutated.body && mutated.body.response.patch !== undefined;
      await g.send('validate', patched ? modify(body, { uid: body.request.uid, replicas: 4 }) : body);
      g.clock.advance(30_000);
    }
    await g.send('validate', scale('a', 2, 9, AGENT, { replicas: 4 })); // a retry of the clamped one
    const episodes = await g.ledger.episodes(AGENT, new Date(0));
    expect(episodes.length).toBeGreaterThanOrEqual(4);
    const expected = assessRisk(episodes);
    expect(expected.requested.score).toBeGreaterThan(expected.admitted.score);
    const s = await g.scrape();
    for (const basis of BASES) {
      for (const [k, name] of Object.entries(GAUGES)) {
        expect(sampleValue(s, name, { agent: AGENT, basis }), `${name} ${basis}`).toBeCloseTo(expected[basis][k as keyof typeof GAUGES], 12);
      }
    }
    // The counters hold the same statistics the gauges were computed from.
    expect(counters(s, AGENT, 'requested')).toMatchObject({ measured: expected.requested.episodes, surplus: expected.requested.aoc });
    expect(counters(s, AGENT, 'admitted')).toMatchObject({ overuse: expected.admitted.overuseEpisodes, growth: expected.admitted.growthEpisodes });
    // The family: the in-memory view learned every admitted workload (4 instances each at most).
    expect(sampleValue(s, 'replica_guard_family_instances', { agent: AGENT })).toBeGreaterThan(0);
    expect(sampleValue(s, 'replica_guard_family_need', { agent: AGENT })).toBe(2 * new Set(episodes.map((e) => e.name)).size);
  });

  it('read the ledger at most once per cache period, never write it, and leave the window behind', async () => {
    const g = rig({ policies: AUDIT, cacheTtlMs: 5_000 });
    await g.send('validate', scale('web', 3, 6));
    const first = await g.scrape();
    expect(sampleValue(first, GAUGES.aoc, { agent: AGENT, basis: 'requested' })).toBe(3);
    const reads: string[] = [];
    const writes: unknown[] = [];
    const transact = g.ledger.transact.bind(g.ledger);
    g.ledger.transact = (agent, step) => {
      reads.push(agent);
      return transact(agent, (state) => {
        const out = step(state);
        if (out.next !== undefined) writes.push(out.next);
        return out;
      });
    };
    await g.send('validate', scale('web-2', 3, 9));
    reads.length = 0;
    writes.length = 0;
    // Within the cache period a scrape shows the previous read.
    expect(sampleValue(await g.scrape(), GAUGES.aoc, { agent: AGENT, basis: 'requested' })).toBe(3);
    expect(reads).toEqual([]);
    g.clock.advance(5_000);
    const [a, b] = await Promise.all([g.scrape(), g.scrape()]);
    // Two scrapes at once share one read: one transaction for the agent.
    expect(reads).toEqual([AGENT]);
    expect(writes).toEqual([]);
    expect(sampleValue(a, GAUGES.aoc, { agent: AGENT, basis: 'requested' })).toBe(9);
    expect(sampleValue(b, GAUGES.aoc, { agent: AGENT, basis: 'requested' })).toBe(9);
    // An hour and a bit later the agent has left the window: no gauge series at all.
    g.clock.advance(3_600_000 + 60_000);
    const late = await g.scrape();
    expect(late.filter((x) => x.name.startsWith('replica_guard_risk_') || x.name.startsWith('replica_guard_family_'))).toEqual([]);
    // The counters stay: they are the source of truth.
    expect(counters(late, AGENT, 'requested').surplus).toBe(9);
  });
});

describe('configuration', () => {
  it('defaults to the paper: 1 h, α = β = 0.5, tolerance 0, line 0.5, min(1, AOC / Σ need), 100 agents', () => {
    const config = configSchema.parse({});
    expect(config.metrics).toEqual({
      window: 3_600_000,
      maxAgents: 100,
      alpha: 0.5,
      beta: 0.5,
      tolerance: 0,
      highRiskLine: 0.5,
      normalisation: 'need-sum',
      cacheTtl: 5_000,
    });
    expect(riskSettingsOf(config)).toEqual(riskDefaults);
  });

  it('reads each key, and refuses weights summing past 1 and windows the ledger cannot cover', () => {
    const config = configSchema.parse({ metrics: { window: '30m', alpha: 0.3, beta: 0.7, tolerance: 1, highRiskLine: 0.4, maxAgents: 5 } });
    expect(riskSettingsOf(config)).toEqual({ windowMs: 1_800_000, alpha: 0.3, beta: 0.7, tolerance: 1, highRiskLine: 0.4, normalisation: 'need-sum' });
    expect(configSchema.safeParse({ metrics: { alpha: 0.6, beta: 0.6 } }).success).toBe(false);
    expect(configSchema.safeParse({ metrics: { window: '7h' } }).success).toBe(false);
    expect(configSchema.safeParse({ metrics: { window: '30s' } }).success).toBe(false);
    expect(configSchema.safeParse({ metrics: { tolerance: 0.5 } }).success).toBe(false);
    expect(configSchema.safeParse({ metrics: { normalisation: 'episodes' } }).success).toBe(false);
  });
});
