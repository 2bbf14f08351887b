import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Policy } from '../../src/core/types.ts';
import { PolicyLoadSource } from '../../src/load/policy-load-source.ts';
import { PrometheusLoadSource } from '../../src/load/prometheus-load-source.ts';
import { review } from '../helpers/fixtures.ts';
import { policy, testGuard } from '../helpers/guard.ts';
import { type Exporter, type PrometheusProcess, startExporter, startPrometheus, startSilentServer } from '../helpers/prometheus.ts';
import { capturingLogger, testClock, waitFor } from '../helpers/telemetry.ts';
import { errorCount, freshErrorCounter, NEVER, needPolicy, needQuery, WEB } from './load-fixtures.ts';

/**
 * The Prometheus load source against Debian's real Prometheus, scraping an exporter the
 * test runs every second. One Prometheus for the file; the last describe stops it.
 */

const GAUGE_QUERY = 'sum(app_load{namespace="{{namespace}}", app="{{name}}"})';
const SHOP_WEB = { namespace: 'shop', app: 'web' };
const CHECKOUT = { namespace: 'shop', app: 'checkout' };

let exporter: Exporter;
let prometheus: PrometheusProcess;

beforeAll(async () => {
  exporter = await startExporter();
  exporter.setGauge('app_load', SHOP_WEB, 260);
  // Counting from now, so the rate has settled by the time its test runs.
  exporter.setCounterRate('http_requests_total', CHECKOUT, 260);
  prometheus = await startPrometheus({ targets: [exporter.target] });
  // Ready in a fraction of a second, but Prometheus hands new targets to its scrapers on a
  // 5 s tick: the first sample takes that long, once per file.
  await prometheus.waitForSample('app_load{namespace="shop", app="web"}', (v) => v === 260);
});

afterAll(async () => {
  await prometheus?.stop();
  await exporter?.close();
});

/** A source that never caches, so each call sees what Prometheus holds now. */
function liveSource(url = prometheus.url, timeoutMs = 2_000) {
  const { logger, lines } = capturingLogger();
  const { errors } = freshErrorCounter();
  const source = new PrometheusLoadSource({ url, timeoutMs, cacheTtlMs: 0, failureTtlMs: 0, clock: testClock(), logger, errors });
  return { source, errors, lines };
}

const gaugePolicy = (extra: Partial<Policy['need']> = {}) =>
  needPolicy({ prometheus: { query: GAUGE_QUERY, targetPerInstance: 50 }, ...extra });

/** Sets the load and waits until Prometheus has scraped it. */
async function setLoad(labels: Readonly<Record<string, string>>, value: number): Promise<void> {
  exporter.setGauge('app_load', labels, value);
  await prometheus.waitForSample(`app_load{namespace="${labels.namespace}", app="${labels.app}"}`, (v) => v === value);
}

describe('PrometheusLoadSource against a real Prometheus', () => {
  it('derives the need from a real query by the HPA rule', async () => {
    const { source } = liveSource();
    await setLoad(SHOP_WEB, 260);
    expect(await source.need(needQuery(gaugePolicy(), 4), NEVER)).toEqual({ kind: 'measured', value: 6, source: 'prometheus' });

    await setLoad(SHOP_WEB, 210); // 210 / (4 × 50) = 1.05: within 10%, keep 4
    expect(await source.need(needQuery(gaugePolicy(), 4), NEVER)).toEqual({ kind: 'measured', value: 4, source: 'prometheus' });

    await setLoad(SHOP_WEB, 0);
    expect(await source.need(needQuery(gaugePolicy({ min: 2 }), 4), NEVER)).toEqual({ kind: 'measured', value: 2, source: 'prometheus' });
  });

  it('reads a rate over a counter, as the policy example writes it', async () => {
    // Wait until the rate Prometheus computes has settled near 260/s; the need at 4 instances
    // of 50 is then ceil(L / 50) = 6 for any L in (250, 300].
    const direct = 'sum(rate(http_requests_total{namespace="shop", app="checkout"}[5s]))';
    await prometheus.waitForSample(direct, (v) => v > 255 && v < 265);
    const { source } = liveSource();
    const rated = needPolicy({
      prometheus: { query: 'sum(rate(http_requests_total{namespace="{{namespace}}", app="{{name}}"}[5s]))', targetPerInstance: 50 },
    });
    const ref = { ...WEB, name: 'checkout' };
    expect(await source.need(needQuery(rated, 4, ref), NEVER)).toEqual({ kind: 'measured', value: 6, source: 'prometheus' });
  });

  it('gives need.min when the query matches no series: a new workload', async () => {
    const { source, errors } = liveSource();
    const ref = { ...WEB, name: 'brand-new' };
    expect(await source.need(needQuery(gaugePolicy({ min: 2 }), 3, ref), NEVER)).toEqual({
      kind: 'measured',
      value: 2,
      source: 'prometheus:no-series',
    });
    expect(await errorCount(errors, 'prometheus', 'no_series')).toBe(1);
  });

  it('gives need.min once a series goes stale', async () => {
    const labels = { namespace: 'shop', app: 'retired' };
    await setLoad(labels, 500);
    const { source } = liveSource();
    const ref = { ...WEB, name: 'retired' };
    expect(await source.need(needQuery(gaugePolicy(), 4, ref), NEVER)).toMatchObject({ value: 10 });
    exporter.remove('app_load', labels);
    await prometheus.waitForNoSeries('app_load{namespace="shop", app="retired"}');
    expect(await source.need(needQuery(gaugePolicy(), 4, ref), NEVER)).toEqual({ kind: 'measured', value: 1, source: 'prometheus:no-series' });
  });

  it('keeps a hostile workload name inside its label matcher: Prometheus parses it as a name', async () => {
    await setLoad(SHOP_WEB, 260);
    const { source } = liveSource();
    // Unescaped, this would add `or vector(1000)` and need 20.
    const hostile = { ...WEB, name: 'web"} or vector(1000) or app_load{app="' };
    expect(await source.need(needQuery(gaugePolicy(), 4, hostile), NEVER)).toEqual({
      kind: 'measured',
      value: 1,
      source: 'prometheus:no-series',
    });
  });

  it('is unavailable when the query returns more than one series', async () => {
    await setLoad({ namespace: 'shop', app: 'api' }, 10);
    const { source, errors } = liveSource();
    const perApp = needPolicy({ prometheus: { query: 'app_load{namespace="{{namespace}}"}', targetPerInstance: 50 } });
    const need = await source.need(needQuery(perApp, 4), NEVER);
    expect(need).toMatchObject({ kind: 'unavailable', reason: expect.stringMatching(/returned \d+ series/) });
    expect(await errorCount(errors, 'prometheus', 'bad_response')).toBe(1);
  });

  it("is unavailable with Prometheus's own words when it refuses the query", async () => {
    const { source, errors } = liveSource();
    const broken = needPolicy({ prometheus: { query: 'sum(app_load{app="{{name}}"}', targetPerInstance: 50 } });
    const need = await source.need(needQuery(broken, 4), NEVER);
    expect(need).toMatchObject({ kind: 'unavailable', reason: expect.stringContaining('prometheus refused the query') });
    expect(await errorCount(errors, 'prometheus', 'query')).toBe(1);
  });

  it('is unavailable within its deadline when the server accepts and never answers', async () => {
    const silent = await startSilentServer();
    try {
      const { source, errors } = liveSource(silent.url, 300);
      const started = performance.now();
      const need = await source.need(needQuery(gaugePolicy(), 4), NEVER);
      const elapsed = performance.now() - started;
      expect(need).toEqual({ kind: 'unavailable', reason: `prometheus at ${silent.url} did not answer within 300 ms` });
      expect(silent.accepted()).toBe(1);
      expect(elapsed).toBeLessThan(1_500);
      expect(await errorCount(errors, 'prometheus', 'timeout')).toBe(1);
    } finally {
      await silent.close();
    }
  });
});

describe('the fallback when Prometheus stops', () => {
  const loadPolicy = policy('load', {
    mode: 'enforce',
    need: { prometheus: { query: GAUGE_QUERY, targetPerInstance: 50 }, onUnavailable: 'hold' },
  });

  it('decides by load while Prometheus runs, and holds the current count once it is stopped', async () => {
    const labels = { namespace: 'agents', app: 'agent-web' };
    await setLoad(labels, 260); // 4 instances of 50: need 6

    const { logger } = capturingLogger();
    const { errors } = freshErrorCounter();
    const clock = testClock();
    const prometheusSource = new PrometheusLoadSource({ url: prometheus.url, cacheTtlMs: 0, failureTtlMs: 0, clock, logger, errors });
    const loadSource = new PolicyLoadSource({ prometheus: prometheusSource, clock, logger, errors });
    const guard = testGuard({ policies: loadPolicy, loadSource });
    try {
      const scale = (to: number) => guard.review('validate', review('deployment-replace-agent-10', { oldReplicas: 4, replicas: to }));

      expect((await scale(6)).allowed).toBe(true);
      expect(guard.lastAudit()).toMatchObject({ need: 6, allowance: 6, verdict: 'allowed' });
      const over = await scale(7);
      expect(over.allowed).toBe(false);
      expect(guard.lastAudit()).toMatchObject({ need: 6, verdict: 'denied', limit: 'need' });

      await prometheus.stop();
      // The process is gone: a query now fails to connect.
      await waitFor(async () => (await prometheusSource.need(needQuery(gaugePolicy(), 4), NEVER)).kind === 'unavailable', 'prometheus to be unreachable');

      const held = await scale(5);
      expect(held.allowed).toBe(false);
      expect(guard.lastAudit()).toMatchObject({ need: 4, allowance: 4, verdict: 'denied', fallback: true });
      expect((await scale(4)).allowed).toBe(true);
      expect(await errorCount(errors, 'prometheus', 'unreachable')).toBeGreaterThanOrEqual(1);
    } finally {
      await guard.close();
    }
  });

  it('a stopped Prometheus is unreachable, said in the reason', async () => {
    const { source, errors } = liveSource();
    const need = await source.need(needQuery(gaugePolicy(), 4), NEVER);
    expect(need).toMatchObject({ kind: 'unavailable', reason: expect.stringContaining('is unreachable') });
    expect(await errorCount(errors, 'prometheus', 'unreachable')).toBe(1);
  });
});
