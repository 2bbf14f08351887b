import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { assessRisk, BASES, type RiskEpisode } from '../src/core/risk.ts';
import { renderRiskRules, riskRecordNames } from '../src/telemetry/risk-rules.ts';
import { generateCertificateAuthority, generateServingCertificate } from '../src/tls/certificates.ts';
import { FakeApiServer } from './fake-apiserver/fake-apiserver.ts';
import { modify, type Review, review } from './helpers/fixtures.ts';
import { type GuardProcess, httpGet, httpsPost, startGuardProcess } from './helpers/process.ts';
import { type PrometheusProcess, startPrometheus } from './helpers/prometheus.ts';
import { waitFor } from './helpers/telemetry.ts';

// End to end with a real Prometheus: two guard processes share one ledger (ConfigMaps in
// the fake API server, reached through a kubeconfig over HTTPS), Prometheus scrapes both
// every second and evaluates the recording rules generated with a 1m window. A scripted
// agent's requests are split across the two guards over their HTTPS webhooks; the
// recorded OR, AOC and ΦR of both bases must equal the risk math (src/core/risk.ts) over
// the episodes, and the guards' own gauges (computed from the shared ledger) must agree.
//
// The kubeconfig goes through a TLS proxy because the kubeconfig path refuses a plain
// http server (@kubernetes/client-node wants insecure-skip-tls-verify, and then the https
// agent it yields cannot serve an http: URL).

const WINDOW = '1m';
const NAMES = riskRecordNames(WINDOW);

/** need 3 + headroom 1 = 4, clamp: a Deployment asking 6 is clamped to 4 by the mutating call. */
const POLICY = `apiVersion: replica-guard.io/v1alpha1
kind: ReplicaPolicy
metadata: { name: risk-e2e }
spec:
  mode: clamp
  agents: { serviceAccounts: ["agents:*"] }
  need: { static: 3, onUnavailable: deny }
  limits: { headroom: 1 }
`;
const ASKED = 6;
const ALLOWED = 4;
const NEED = 3;
/** Counted episodes, after one warm-up episode per guard. */
const EPISODES = 10;

let fake: FakeApiServer;
let proxy: Server;
let dir: string;
let prometheus: PrometheusProcess | undefined;
const guards: { process: GuardProcess; ca: string }[] = [];

async function startGuard(name: string, kubeconfig: string, policies: string): Promise<{ process: GuardProcess; ca: string }> {
  const certs = join(dir, name, 'certs');
  const config = join(dir, name, 'config.yaml');
  await mkdir(join(dir, name), { recursive: true });
  await writeFile(
    config,
    YAML.stringify({
      webhook: { port: 0 },
      ops: { port: 0 },
      tls: { dir: certs },
      policies: { dir: policies, pollInterval: '1h' },
      cluster: { kubeconfig, namespace: 'replica-guard' },
      view: { bookmarkInterval: '1s', requestTimeout: '5s' },
      // Gauges read the ledger at every scrape, so that they follow the episodes within a scrape.
      metrics: { cacheTtl: '100ms' },
    }),
  );
  const process = await startGuardProcess(['--config', config]);
  return { process, ca: await readFile(join(certs, 'ca.crt'), 'utf8') };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-risk-e2e-'));
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 500 });
  const now = new Date();
  const ca = await generateCertificateAuthority({ now });
  const serving = await generateServingCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now });
  proxy = createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
    const upstream = httpRequest(`${fake.url}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
    res.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'fake',
          cluster: {
            server: `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
            'certificate-authority-data': Buffer.from(ca.cert).toString('base64'),
          },
        },
      ],
      users: [{ name: 'guard', user: { token: 'guard-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'guard' } }],
      'current-context': 'fake',
    }),
  );
  const policies = join(dir, 'policies');
  await mkdir(policies);
  await writeFile(join(policies, 'risk.yaml'), POLICY);
  guards.push(await startGuard('a', kubeconfig, policies), await startGuard('b', kubeconfig, policies));
  for (const g of guards) {
    await waitFor(async () => (await httpGet(`${g.process.opsUrl}/readyz`)).status === 200, 'the guard to be ready', 10_000);
  }
  prometheus = await startPrometheus({
    targets: guards.map((g) => new URL(g.process.opsUrl).host),
    scrapeIntervalSeconds: 1,
    rules: renderRiskRules({ window: WINDOW }),
  });
}, 60_000);

afterAll(async () => {
  await prometheus?.stop();
  await Promise.all(guards.map((g) => g.process.stop('SIGKILL')));
  if (proxy) {
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  }
  await fake?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  response: { uid: string; allowed: boolean; patch?: string };
}

async function send(guard: { process: GuardProcess; ca: string }, webhook: 'mutate' | 'validate', body: Review): Promise<Answer['response']> {
  const answer = await httpsPost(`${guard.process.webhookUrl}/${webhook}?timeout=10s`, body, { ca: guard.ca });
  expect(answer.status).toBe(200);
  const { response } = JSON.parse(answer.body) as Answer;
  expect(response.uid).toBe(body.request.uid);
  return response;
}

/** A CREATE of Deployment `name` asking for 6 replicas, as the agent sends it. */
const create = (name: string): Review =>
  review('deployment-create-agent', {
    replicas: ASKED,
    set: [
      ['name', name],
      ['object.metadata.name', name],
      ['object.metadata.uid', `uid-${name}`],
    ],
  });

/**
 * One episode: the mutating call on `mutator` clamps 6 to 4; the apiserver then sends the
 * clamped object to the validating webhook of `validator` (the same request uid), which admits it.
 */
async function episode(name: string, mutator: number, validator: number): Promise<void> {
  const m = guards[mutator];
  const v = guards[validator];
  if (m === undefined || v === undefined) throw new Error('no such guard');
  const body = create(name);
  const mutated = await send(m, 'mutate', body);
  expect(mutated.allowed).toBe(true);
  const patch = JSON.parse(Buffer.from(mutated.patch ?? '', 'base64').toString('utf8')) as { op: string; path: string; value: unknown }[];
  expect(patch).toContainEqual({ op: 'replace', path: '/spec/replicas', value: ALLOWED });
  expect((await send(v, 'validate', modify(body, { uid: body.request.uid, replicas: ALLOWED }))).allowed).toBe(true);
}

/** Prometheus's instant vector as [labels, value] pairs. */
async function vector(promql: string): Promise<{ labels: Record<string, string>; value: number }[]> {
  const data = await (prometheus as PrometheusProcess).query(promql);
  return (data.result as { metric: Record<string, string>; value: [number, string] }[]).map((s) => ({ labels: s.metric, value: Number(s.value[1]) }));
}

const one = async (promql: string): Promise<number> => {
  const v = await vector(promql);
  expect(v, promql).toHaveLength(1);
  return v[0]?.value ?? Number.NaN;
};

describe('the risk metrics end to end, with a real Prometheus and two guards', () => {
  it('records OR, AOC and ΦR per basis equal to the risk math, and the gauges agree', async () => {
    const prom = prometheus as PrometheusProcess;
    const counted = 'replica_guard_episodes_total{basis="requested",need="measured"}';

    // Warm-up: one episode entirely on each guard, so that each exports the agent's counters
    // before the counted episodes. increase() never sees a series' first step from absent to
    // its first value, so without it the first episode on each guard would go uncounted.
    await episode('warm-a', 0, 0);
    await episode('warm-b', 1, 1);
    await waitFor(async () => {
      const v = await vector(counted);
      return v.length === 2 && v.every((s) => s.value === 1);
    }, 'both guards scraped after the warm-up', 15_000);

    // Ten episodes of distinct workloads, split across the guards: the mutating call on one,
    // the validating call on the other, alternating.
    for (let i = 0; i < EPISODES; i += 1) await episode(`grow-${i}`, i % 2, (i + 1) % 2);
    // The agent retries one of them in full (a fresh request uid, the same workload, from and
    // to): the same episode key, counted once, whichever guard sees it.
    await episode('grow-3', 0, 0);
    await episode('grow-3', 1, 1);

    // The oracle: the risk math over the counted episodes, as the ledger holds them.
    const episodes: RiskEpisode[] = Array.from({ length: EPISODES }, () => ({
      from: 0,
      requested: ASKED,
      admitted: ALLOWED,
      need: NEED,
      measured: true,
      fallback: false,
    }));
    const expected = assessRisk(episodes);
    // By hand. Requested: OR 1, AOC 10 × 3 = 30, AOC_norm min(1, 30/30) = 1, SR 1, ΦR 1.
    expect(expected.requested).toMatchObject({ overuseRate: 1, aoc: 30, aocNorm: 1, successRate: 1, score: 1 });
    // Admitted (clamped to 4): OR 1, AOC 10 × 1 = 10, AOC_norm 10/30, SR 1, ΦR 0.5 + 0.5/3.
    expect(expected.admitted).toMatchObject({ overuseRate: 1, aoc: 10, successRate: 1 });
    expect(expected.admitted.score).toBeCloseTo(2 / 3, 12);

    // Both guards scraped with every episode counted (the retry added nothing)...
    await waitFor(async () => (await one(`sum(${counted})`)) === EPISODES + 2, 'every episode scraped', 15_000);
    // increase() extrapolates each target's counters from its first and last samples to the
    // edges of the 1m range, by at most half a scrape interval on either side: with ~35 s of
    // samples (since the warm-up) that is some 3 % on the sum AOC (scrape jitter adds a little;
    // with 25 samples we saw 5.1 %). Wait for them: the counted episodes, ~2 s after the
    // warm-up, stay inside the 1m range until ~20 s after this.
    await prom.waitForSample(`min(count_over_time(${counted}[1m]))`, (n) => n >= 35, 50_000);
    // ...and for the rules evaluated after that.
    const settled = Date.now() / 1000;
    await prom.waitForSample(`max(timestamp(${NAMES.riskScore}))`, (t) => t > settled + 0.5, 15_000);
    // Long after the last request: the retry still counted once (warm-ups + 10), on both bases.
    expect(await one(`sum(${counted})`)).toBe(EPISODES + 2);
    expect(await one(`sum(replica_guard_surplus_instances_total{basis="admitted"})`)).toBe(EPISODES + 2);

    for (const basis of BASES) {
      const sel = `{basis="${basis}"}`;
      // Every episode has the same profile on either guard, so every ratio of two increases is
      // exact whatever increase() extrapolates (the same factor per target in numerator and
      // denominator); only the sum AOC carries the extrapolation: never below the true sum
      // (all of it lies in the range), a few % above it (see above), hence a 5 % band.
      expect(await one(`${NAMES.overuseRate}${sel}`), `OR ${basis}`).toBeCloseTo(expected[basis].overuseRate, 2);
      expect(await one(`${NAMES.aocNorm}${sel}`), `AOC_norm ${basis}`).toBeCloseTo(expected[basis].aocNorm, 2);
      expect(await one(`${NAMES.successRate}${sel}`), `SR ${basis}`).toBeCloseTo(expected[basis].successRate, 2);
      const score = await one(`${NAMES.riskScore}${sel}`);
      expect(score, `ΦR ${basis}`).toBeCloseTo(expected[basis].score, 2);
      const aoc = await one(`${NAMES.aoc}${sel}`);
      expect(aoc, `AOC ${basis}`).toBeGreaterThanOrEqual(expected[basis].aoc * 0.999);
      expect(aoc, `AOC ${basis}`).toBeLessThanOrEqual(expected[basis].aoc * 1.05);
      // AOC per episode is exact, though: the same extrapolation on both sides.
      expect(await one(`${NAMES.aoc}${sel} / ${NAMES.episodes}${sel}`), `AOC / E ${basis}`).toBeCloseTo(expected[basis].aoc / EPISODES, 2);

      // The gauges, from the shared ledger (warm-ups included: the same profile, the same ratios).
      const gauges = await vector(`max by (agent, basis) (replica_guard_risk_score${sel})`);
      expect(gauges).toHaveLength(1);
      expect(gauges[0]?.value, `gauge ΦR ${basis}`).toBeCloseTo(score, 2);
      // Both replicas export the same cluster-wide value.
      expect(await vector(`replica_guard_risk_score${sel}`)).toHaveLength(2);
      expect(await one(`max(replica_guard_risk_score${sel}) - min(replica_guard_risk_score${sel})`)).toBe(0);
    }
  }, 80_000);
});
