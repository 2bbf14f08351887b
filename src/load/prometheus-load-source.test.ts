import { describe, expect, it } from 'vitest';
import { capturingLogger, testClock } from '../../test/helpers/telemetry.ts';
import { errorCount, freshErrorCounter, NEVER, needPolicy, needQuery, WEB } from '../../test/load/load-fixtures.ts';
import type { Policy } from '../core/types.ts';
import { type FetchFunction, PrometheusLoadSource, type PrometheusLoadSourceOptions } from './prometheus-load-source.ts';

const QUERY = 'sum(rate(http_requests_total{namespace="{{namespace}}", app="{{name}}"}[2m]))';

const vectorOf = (...values: string[]) =>
  JSON.stringify({
    status: 'success',
    data: { resultType: 'vector', result: values.map((v) => ({ metric: {}, value: [1_700_000_000, v] })) },
  });

interface Call {
  readonly url: string;
  readonly init: RequestInit;
}

/** The fetch boundary, counted: each call answers what `answer` says for it. */
function countingFetch(answer: (call: Call, index: number) => Promise<Response> | Response) {
  const calls: Call[] = [];
  const fetch: FetchFunction = async (input, init) => {
    const call = { url: String(input), init };
    calls.push(call);
    return answer(call, calls.length - 1);
  };
  return { fetch, calls };
}

const refused = () => {
  const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
  return Promise.reject(new TypeError('fetch failed', { cause }));
};

/** A fetch that answers only when its signal fires, with the signal's reason, as undici does. */
const hanging: FetchFunction = (_input, init) =>
  new Promise((_resolve, reject) => {
    const signal = init.signal;
    if (!signal) return;
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });

function source(fetch: FetchFunction, overrides: Partial<PrometheusLoadSourceOptions> = {}) {
  const { logger, lines } = capturingLogger();
  const clock = testClock();
  const { errors } = freshErrorCounter();
  const prometheus = new PrometheusLoadSource({ url: 'http://prometheus.test:9090', fetch, clock, logger, errors, ...overrides });
  return { prometheus, lines, clock, errors };
}

const perInstance = (extra: Partial<Policy['need']> = {}) =>
  needPolicy({ prometheus: { query: QUERY, targetPerInstance: 50 }, ...extra });

describe('PrometheusLoadSource: the need from the load', () => {
  it.each([
    // load, current, need
    [260, 4, 6],
    [210, 4, 4], // ratio 1.05: within 10%, the count stays
    [190, 4, 4], // ratio 0.95
    [230, 4, 5], // ratio 1.15: ceil(230 / 50)
    [100, 4, 2],
    [0, 4, 1], // no load: need.min (1 by default)
    [1000, 4, 20],
  ])('load %d at %d instances of 50 each needs %d', async (load, current, need) => {
    const { fetch } = countingFetch(() => new Response(vectorOf(String(load))));
    const { prometheus } = source(fetch);
    expect(await prometheus.need(needQuery(perInstance(), current), NEVER)).toEqual({ kind: 'measured', value: need, source: 'prometheus' });
  });

  it('bounds the need by need.min and need.max', async () => {
    const { fetch } = countingFetch(() => new Response(vectorOf('1000')));
    const { prometheus } = source(fetch);
    expect(await prometheus.need(needQuery(perInstance({ max: 8 }), 4), NEVER)).toMatchObject({ value: 8 });
    const { prometheus: low } = source(countingFetch(() => new Response(vectorOf('10'))).fetch);
    expect(await low.need(needQuery(perInstance({ min: 3 }), 4), NEVER)).toMatchObject({ value: 3 });
  });

  it('gives need.min to a workload with no instances yet (CREATE)', async () => {
    const { fetch } = countingFetch(() => new Response(vectorOf('500')));
    const { prometheus } = source(fetch);
    expect(await prometheus.need(needQuery(perInstance({ min: 2 }), 0), NEVER)).toMatchObject({ value: 2 });
  });

  it('gives need.min, as measured, when the query matches no series; counts it as no_series', async () => {
    const { fetch } = countingFetch(() => new Response(vectorOf()));
    const { prometheus, errors } = source(fetch);
    expect(await prometheus.need(needQuery(perInstance({ min: 2 }), 4), NEVER)).toEqual({
      kind: 'measured',
      value: 2,
      source: 'prometheus:no-series',
    });
    expect(await errorCount(errors, 'prometheus', 'no_series')).toBe(1);
  });

  it('with a latency target, scales the count by latency over target (the weaker signal)', async () => {
    const { fetch } = countingFetch(() => new Response(vectorOf('0.4')));
    const { prometheus } = source(fetch);
    const policy = needPolicy({ prometheus: { query: QUERY, latencyTarget: 0.2 } });
    expect(await prometheus.need(needQuery(policy, 3), NEVER)).toEqual({ kind: 'measured', value: 6, source: 'prometheus:latency' });
    const { prometheus: calm } = source(countingFetch(() => new Response(vectorOf('0.21'))).fetch);
    expect(await calm.need(needQuery(policy, 3), NEVER)).toMatchObject({ value: 3 });
  });
});

describe('PrometheusLoadSource: the query', () => {
  it('POSTs the templated query, escaped, with its own deadline, to /api/v1/query under the base path', async () => {
    const { fetch, calls } = countingFetch(() => new Response(vectorOf('1')));
    const { prometheus } = source(fetch, { url: 'https://mon.example/prometheus', timeoutMs: 1500, headers: { authorization: 'Bearer t' } });
    const ref = { ...WEB, name: 'we"b' };
    await prometheus.need(needQuery(perInstance(), 1, ref), NEVER);
    expect(calls).toHaveLength(1);
    const call = calls[0];
    expect(call?.url).toBe('https://mon.example/prometheus/api/v1/query');
    expect(call?.init.method).toBe('POST');
    const form = new URLSearchParams(String(call?.init.body));
    expect(form.get('query')).toBe('sum(rate(http_requests_total{namespace="shop", app="we\\"b"}[2m]))');
    expect(form.get('timeout')).toBe('1500ms');
    expect(new Headers(call?.init.headers).get('authorization')).toBe('Bearer t');
  });

  it('refuses a template with an unknown placeholder without asking Prometheus', async () => {
    const { fetch, calls } = countingFetch(() => new Response(vectorOf('1')));
    const { prometheus, errors } = source(fetch);
    const policy = needPolicy({ prometheus: { query: 'x{pod="{{pod}}"}', targetPerInstance: 1 } });
    expect(await prometheus.need(needQuery(policy, 1), NEVER)).toEqual({
      kind: 'unavailable',
      reason: expect.stringContaining('{{pod}}'),
    });
    expect(calls).toHaveLength(0);
    expect(await errorCount(errors, 'prometheus', 'query')).toBe(1);
  });
});

describe('PrometheusLoadSource: failures', () => {
  it.each([
    ['connection refused', refused, 'unreachable', /prometheus at http:\/\/prometheus\.test:9090 is unreachable: connection refused/],
    ['an HTTP error', () => new Response('upstream down', { status: 502 }), 'http', /HTTP 502/],
    [
      'status "error"',
      () => new Response(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error' }), { status: 400 }),
      'query',
      /parse error/,
    ],
    ['NaN', () => new Response(vectorOf('NaN')), 'bad_response', /NaN/],
    ['+Inf', () => new Response(vectorOf('+Inf')), 'bad_response', /Inf/],
    ['a negative load', () => new Response(vectorOf('-1')), 'bad_response', /negative/],
    ['two series', () => new Response(vectorOf('1', '2')), 'bad_response', /2 series/],
    ['HTML', () => new Response('<html></html>'), 'bad_response', /other than JSON/],
  ] as const)('%s is unavailable, with the reason, counted as %s', async (_what, answer, reason, message) => {
    const { fetch } = countingFetch(answer);
    const { prometheus, errors } = source(fetch);
    const need = await prometheus.need(needQuery(perInstance(), 4), NEVER);
    expect(need.kind).toBe('unavailable');
    if (need.kind === 'unavailable') expect(need.reason).toMatch(message);
    expect(await errorCount(errors, 'prometheus', reason)).toBe(1);
  });

  it('gives up at its own deadline on a Prometheus that does not answer', async () => {
    const { prometheus, errors } = source(hanging, { timeoutMs: 50 });
    const started = performance.now();
    const need = await prometheus.need(needQuery(perInstance(), 4), NEVER);
    const elapsed = performance.now() - started;
    expect(need).toEqual({ kind: 'unavailable', reason: 'prometheus at http://prometheus.test:9090 did not answer within 50 ms' });
    expect(elapsed).toBeGreaterThanOrEqual(45);
    expect(elapsed).toBeLessThan(2_000);
    expect(await errorCount(errors, 'prometheus', 'timeout')).toBe(1);
  });

  it("answers at once when the caller's deadline fires first", async () => {
    const { prometheus } = source(hanging, { timeoutMs: 60_000 });
    const caller = new AbortController();
    const pending = prometheus.need(needQuery(perInstance(), 4), caller.signal);
    caller.abort();
    expect(await pending).toEqual({ kind: 'unavailable', reason: expect.stringContaining('before the admission deadline') });
  });

  it('never rejects, even when the fetch boundary throws synchronously', async () => {
    const { prometheus } = source(() => {
      throw new Error('unexpected');
    });
    expect(await prometheus.need(needQuery(perInstance(), 4), NEVER)).toMatchObject({ kind: 'unavailable' });
  });
});

describe('PrometheusLoadSource: cache', () => {
  it('makes one query for a burst of requests about one workload', async () => {
    let release: (r: Response) => void = () => {};
    const { fetch, calls } = countingFetch(() => new Promise<Response>((resolve) => (release = resolve)));
    const { prometheus } = source(fetch);
    const burst = Array.from({ length: 25 }, () => prometheus.need(needQuery(perInstance(), 4), NEVER));
    // Different current counts share the load: the cache holds L, not the need.
    burst.push(prometheus.need(needQuery(perInstance(), 6), NEVER));
    release(new Response(vectorOf('260')));
    const needs = await Promise.all(burst);
    expect(calls).toHaveLength(1);
    expect(needs.slice(0, 25).every((n) => n.kind === 'measured' && n.value === 6)).toBe(true);
    expect(needs[25]).toMatchObject({ value: 6 }); // 260 / (6 × 50) = 0.87: ceil(5.2) = 6
  });

  it('reuses an answer for the TTL, then asks again', async () => {
    const { fetch, calls } = countingFetch((_c, i) => new Response(vectorOf(i === 0 ? '260' : '100')));
    const { prometheus, clock } = source(fetch, { cacheTtlMs: 5_000 });
    const ask = () => prometheus.need(needQuery(perInstance(), 4), NEVER);
    expect(await ask()).toMatchObject({ value: 6 });
    clock.advance(4_999);
    expect(await ask()).toMatchObject({ value: 6 });
    expect(calls).toHaveLength(1);
    clock.advance(1);
    expect(await ask()).toMatchObject({ value: 2 });
    expect(calls).toHaveLength(2);
  });

  it('caches per query text: another workload is another query', async () => {
    const { fetch, calls } = countingFetch(() => new Response(vectorOf('100')));
    const { prometheus } = source(fetch);
    await prometheus.need(needQuery(perInstance(), 4), NEVER);
    await prometheus.need(needQuery(perInstance(), 4, { ...WEB, name: 'api' }), NEVER);
    await prometheus.need(needQuery(perInstance(), 4), NEVER);
    expect(calls).toHaveLength(2);
  });

  it('keeps a failure for a shorter time, so a Prometheus that is down is asked once a second', async () => {
    const { fetch, calls } = countingFetch(refused);
    const { prometheus, clock, errors } = source(fetch, { cacheTtlMs: 5_000, failureTtlMs: 1_000 });
    for (let i = 0; i < 40; i += 1) {
      expect(await prometheus.need(needQuery(perInstance(), 4), NEVER)).toMatchObject({ kind: 'unavailable' });
      clock.advance(100);
    }
    // 4 s of requests every 100 ms: one query per second.
    expect(calls).toHaveLength(4);
    expect(await errorCount(errors, 'prometheus', 'unreachable')).toBe(4);
  });

  it('logs a down Prometheus once per interval, however many requests fail', async () => {
    const { fetch } = countingFetch(refused);
    const { prometheus, clock, lines, errors } = source(fetch, { failureTtlMs: 1_000, logIntervalMs: 60_000 });
    for (let i = 0; i < 150; i += 1) {
      await prometheus.need(needQuery(perInstance(), 4), NEVER);
      clock.advance(1_000);
    }
    expect(await errorCount(errors, 'prometheus', 'unreachable')).toBe(150);
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings.map((l) => l.suppressed)).toEqual([0, 59, 59]);
    expect(warnings[0]).toMatchObject({ source: 'prometheus', reason: 'unreachable' });
  });
});
