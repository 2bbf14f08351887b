import { describe, expect, it } from 'vitest';
import { capturingLogger, testClock } from '../../test/helpers/telemetry.ts';
import { errorCount, freshErrorCounter, NEVER, needPolicy, needQuery, WEB } from '../../test/load/load-fixtures.ts';
import type { NeedFact, Policy } from '../core/types.ts';
import type { LoadSource, NeedQuery } from './load-source.ts';
import { PolicyLoadSource, type PolicyLoadSourceOptions } from './policy-load-source.ts';

/** A source that answers a fixed need and records what it was asked. */
function recording(value: number, source: string) {
  const asked: NeedQuery[] = [];
  const loadSource: LoadSource = {
    async need(query): Promise<NeedFact> {
      asked.push(query);
      return { kind: 'measured', value, source };
    },
  };
  return { loadSource, asked };
}

function setup(wired: Partial<Pick<PolicyLoadSourceOptions, 'prometheus' | 'metricsApi' | 'hpa'>>) {
  const { logger, lines } = capturingLogger();
  const { errors } = freshErrorCounter();
  const source = new PolicyLoadSource({ ...wired, clock: testClock(), logger, errors });
  return { source, errors, lines };
}

const prometheusPolicy = (extra: Partial<Policy['need']> = {}) =>
  needPolicy({ prometheus: { query: 'sum(x{app="{{name}}"})', targetPerInstance: 10 }, ...extra });

describe('PolicyLoadSource', () => {
  it('asks the source the policy names', async () => {
    const prometheus = recording(5, 'prometheus');
    const metricsApi = recording(6, 'metrics-api');
    const hpa = recording(7, 'hpa');
    const { source } = setup({ prometheus: prometheus.loadSource, metricsApi: metricsApi.loadSource, hpa: hpa.loadSource });
    expect(await source.need(needQuery(prometheusPolicy(), 2), NEVER)).toMatchObject({ value: 5 });
    expect(await source.need(needQuery(needPolicy({ metricsApi: { targetCpuUtilization: 60 } }), 2), NEVER)).toMatchObject({ value: 6 });
    expect(await source.need(needQuery(needPolicy({ hpa: {} }), 2), NEVER)).toMatchObject({ value: 7 });
    expect([prometheus.asked.length, metricsApi.asked.length, hpa.asked.length]).toEqual([1, 1, 1]);
  });

  it('passes the signal on', async () => {
    let seen: AbortSignal | undefined;
    const { source } = setup({
      prometheus: {
        async need(_q, signal) {
          seen = signal;
          return { kind: 'unmeasured' };
        },
      },
    });
    const controller = new AbortController();
    await source.need(needQuery(prometheusPolicy(), 2), controller.signal);
    expect(seen).toBe(controller.signal);
  });

  it('keeps the static need for a policy that names no live source', async () => {
    const { source } = setup({});
    expect(await source.need(needQuery(needPolicy({ static: 3, max: 2 }), 1), NEVER)).toEqual({ kind: 'measured', value: 2, source: 'static' });
    expect(await source.need(needQuery(needPolicy({}), 1), NEVER)).toEqual({ kind: 'unmeasured' });
  });

  it.each(['Job', 'CronJob', 'DaemonSet', 'Pod'])('gives a %s, which has no load signal, the static need or none', async (kind) => {
    const prometheus = recording(9, 'prometheus');
    const { source } = setup({ prometheus: prometheus.loadSource });
    const ref = { ...WEB, group: kind === 'Pod' ? '' : 'batch', kind };
    expect(await source.need(needQuery(prometheusPolicy({ static: 2 }), 1, ref), NEVER)).toEqual({ kind: 'measured', value: 2, source: 'static' });
    expect(await source.need(needQuery(prometheusPolicy(), 1, ref), NEVER)).toEqual({ kind: 'unmeasured' });
    expect(prometheus.asked).toHaveLength(0);
  });

  it.each([
    ['prometheus', prometheusPolicy()],
    ['metrics-api', needPolicy({ metricsApi: { targetCpuUtilization: 60 } })],
    ['hpa', needPolicy({ hpa: {} })],
  ] as const)('is unavailable, saying so, when the policy names %s and the guard has none', async (name, policy) => {
    const { source, errors } = setup({});
    const need = await source.need(needQuery(policy, 2), NEVER);
    expect(need).toEqual({ kind: 'unavailable', reason: `policy load-policy takes its need from ${name}, which this guard is not configured to reach` });
    expect(await errorCount(errors, name, 'not_configured')).toBe(1);
  });

  it("does not query a live source with an HPA's own name: its need is its target's", async () => {
    const prometheus = recording(9, 'prometheus');
    const { source } = setup({ prometheus: prometheus.loadSource });
    const ref = { group: 'autoscaling', kind: 'HorizontalPodAutoscaler', namespace: 'shop', name: 'web-hpa' };
    expect(await source.need(needQuery(prometheusPolicy(), 2, ref), NEVER)).toMatchObject({ kind: 'unavailable' });
    expect(prometheus.asked).toHaveLength(0);
  });
});
