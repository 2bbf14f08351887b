import { describe, expect, it } from 'vitest';
import { capturingLogger, testClock } from '../../test/helpers/telemetry.ts';
import { errorCount, freshErrorCounter, NEVER, needPolicy, needQuery, WEB } from '../../test/load/load-fixtures.ts';
import { cpuUtilizationRatio, MetricsApiLoadSource } from './metrics-api-load-source.ts';
import type { PodCpuUsage, PodMetricsReader, PodMetricsResult } from './pod-metrics-reader.ts';
import { InMemoryWorkloadPods, type WorkloadPod } from './workload-pods.ts';

const pods = (...requests: (number | undefined)[]): WorkloadPod[] =>
  requests.map((cpuRequestCores, i) => ({ name: `web-${i}`, cpuRequestCores }));
const usage = (...cores: (number | undefined)[]): PodCpuUsage[] =>
  cores.flatMap((cpuCores, i) => (cpuCores === undefined ? [] : [{ name: `web-${i}`, cpuCores }]));

describe('cpuUtilizationRatio', () => {
  it('is summed usage over summed requests, against the target', () => {
    // 0.9 + 0.5 cores used of 2 × 0.5 requested: 140% against a 70% target.
    expect(cpuUtilizationRatio(pods(0.5, 0.5), usage(0.9, 0.5), 70)).toEqual({ kind: 'ratio', ratio: 2, utilizationPercent: 140 });
  });

  it('ignores usage of pods that are not the workload’s', () => {
    const result = cpuUtilizationRatio(pods(1), [...usage(0.5), { name: 'other-pod', cpuCores: 10 }], 50);
    expect(result).toMatchObject({ ratio: 1 });
  });

  it('counts pods without metrics at 0% when the others say scale up', () => {
    // Measured: 2 cores of 1 requested (200%, ratio 4 at 50%); with the missing pod at 0: 2 / 2 = 100%, ratio 2.
    expect(cpuUtilizationRatio(pods(1, 1), usage(2), 50)).toMatchObject({ ratio: 2 });
  });

  it('counts pods without metrics at 100% of their request when the others say scale down', () => {
    // Measured: 0.1 of 1 (10%, ratio 0.2 at 50%); with the missing pod at 1 core: 1.1 / 2 = 55%, ratio 1.1 → reverses: 1.
    expect(cpuUtilizationRatio(pods(1, 1), usage(0.1), 50)).toMatchObject({ ratio: 1 });
    // Three missing of four, measured 0 of 1 → with missing at 100%: 3 / 4 = 75% against 100% → 0.75 (still down).
    expect(cpuUtilizationRatio(pods(1, 1, 1, 1), usage(0), 100)).toMatchObject({ ratio: 0.75 });
  });

  it('has no ratio when no pod has metrics', () => {
    expect(cpuUtilizationRatio(pods(1, 1), [], 50)).toEqual({ kind: 'no-metrics', pods: 2 });
  });
});

/** The metrics boundary, counted. */
function fakeMetrics(answer: () => PodMetricsResult | Promise<PodMetricsResult>) {
  const calls: { namespace: string; selector: string }[] = [];
  const reader: PodMetricsReader = {
    async cpuUsage(namespace, selector) {
      calls.push({ namespace, selector });
      return answer();
    },
  };
  return { reader, calls };
}

function setup(answer: () => PodMetricsResult | Promise<PodMetricsResult>) {
  const { logger, lines } = capturingLogger();
  const clock = testClock();
  const { errors } = freshErrorCounter();
  const workloads = new InMemoryWorkloadPods();
  const metrics = fakeMetrics(answer);
  const source = new MetricsApiLoadSource({ metrics: metrics.reader, pods: workloads, clock, logger, errors });
  return { source, workloads, metrics, clock, errors, lines };
}

const cpuPolicy = (extra = {}) => needPolicy({ metricsApi: { targetCpuUtilization: 50 }, ...extra });

describe('MetricsApiLoadSource', () => {
  it('needs ceil(current × ratio) by the HPA rule', async () => {
    const { source, workloads, metrics } = setup(() => ({ ok: true, pods: usage(0.9, 0.9, 0.9, 0.9) }));
    workloads.set(WEB, { labelSelector: 'app=web', pods: pods(1, 1, 1, 1) });
    // 90% against 50%: ratio 1.8, ceil(4 × 1.8) = 8.
    expect(await source.need(needQuery(cpuPolicy(), 4), NEVER)).toEqual({ kind: 'measured', value: 8, source: 'metrics-api' });
    expect(metrics.calls).toEqual([{ namespace: 'shop', selector: 'app=web' }]);
  });

  it('keeps the count within the 10% band, and caps at need.max', async () => {
    const { source, workloads } = setup(() => ({ ok: true, pods: usage(0.27, 0.27) }));
    workloads.set(WEB, { labelSelector: 'app=web', pods: pods(0.5, 0.5) });
    expect(await source.need(needQuery(cpuPolicy(), 2), NEVER)).toMatchObject({ value: 2 }); // 54%: 1.08
    const { source: hot, workloads: w2 } = setup(() => ({ ok: true, pods: usage(5, 5) }));
    w2.set(WEB, { labelSelector: 'app=web', pods: pods(0.5, 0.5) });
    expect(await hot.need(needQuery(cpuPolicy({ max: 5 }), 2), NEVER)).toMatchObject({ value: 5 });
  });

  it('gives need.min to a workload that runs no pods yet', async () => {
    const { source, workloads, metrics, errors } = setup(() => ({ ok: true, pods: [] }));
    workloads.set(WEB, { labelSelector: 'app=web', pods: [] });
    expect(await source.need(needQuery(cpuPolicy({ min: 2 }), 3), NEVER)).toEqual({
      kind: 'measured',
      value: 2,
      source: 'metrics-api:no-pods',
    });
    expect(metrics.calls).toHaveLength(0);
    expect(await errorCount(errors, 'metrics-api', 'no_series')).toBe(1);
  });

  it.each([
    ['the workload is unknown', undefined, () => ({ ok: true as const, pods: [] }), 'unknown_workload', /does not know the pods/],
    ['a pod has no CPU request', pods(1, undefined), () => ({ ok: true as const, pods: usage(1, 1) }), 'no_requests', /no CPU request/],
    ['no pod has metrics yet', pods(1, 1), () => ({ ok: true as const, pods: [] }), 'no_metrics', /no CPU usage for any of the 2 pods/],
    [
      'the metrics API fails',
      pods(1),
      () => ({ ok: false as const, failure: { reason: 'http' as const, detail: 'metrics.k8s.io answered HTTP 404' } }),
      'http',
      /HTTP 404/,
    ],
  ])('is unavailable when %s', async (_what, workloadPods, answer, reason, message) => {
    const { source, workloads, errors } = setup(answer);
    if (workloadPods) workloads.set(WEB, { labelSelector: 'app=web', pods: workloadPods });
    const need = await source.need(needQuery(cpuPolicy(), 2), NEVER);
    expect(need.kind).toBe('unavailable');
    if (need.kind === 'unavailable') expect(need.reason).toMatch(message);
    expect(await errorCount(errors, 'metrics-api', reason)).toBe(1);
  });

  it('lists the metrics once for a burst, and again after the TTL', async () => {
    const { source, workloads, metrics, clock } = setup(() => ({ ok: true, pods: usage(0.5) }));
    workloads.set(WEB, { labelSelector: 'app=web', pods: pods(1) });
    await Promise.all(Array.from({ length: 10 }, () => source.need(needQuery(cpuPolicy(), 1), NEVER)));
    expect(metrics.calls).toHaveLength(1);
    clock.advance(5_000);
    await source.need(needQuery(cpuPolicy(), 1), NEVER);
    expect(metrics.calls).toHaveLength(2);
  });

  it('never rejects, even when the reader throws', async () => {
    const { source, workloads } = setup(() => {
      throw new Error('reader bug');
    });
    workloads.set(WEB, { labelSelector: 'app=web', pods: pods(1) });
    expect(await source.need(needQuery(cpuPolicy(), 1), NEVER)).toMatchObject({ kind: 'unavailable' });
  });
});
