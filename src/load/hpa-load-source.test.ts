import { describe, expect, it } from 'vitest';
import { capturingLogger, testClock } from '../../test/helpers/telemetry.ts';
import { errorCount, freshErrorCounter, NEVER, needPolicy, needQuery, WEB } from '../../test/load/load-fixtures.ts';
import type { AgentIdentity } from '../core/types.ts';
import { HpaLoadSource, InMemoryHpaReader } from './hpa-load-source.ts';

const agent: AgentIdentity = { username: 'system:serviceaccount:agents:agent-1', serviceAccount: { namespace: 'agents', name: 'agent-1' } };

function setup() {
  const { logger, lines } = capturingLogger();
  const { errors } = freshErrorCounter();
  const hpas = new InMemoryHpaReader();
  const source = new HpaLoadSource({ hpas, clock: testClock(), logger, errors });
  return { source, hpas, errors, lines };
}

const hpaPolicy = (extra = {}) => needPolicy({ hpa: {}, ...extra });

describe('HpaLoadSource', () => {
  it("takes the desired replicas of an HPA the agent's family cannot write", async () => {
    const { source, hpas } = setup();
    hpas.set(WEB, { namespace: 'shop', name: 'web', desiredReplicas: 7, familyCanWrite: false });
    expect(await source.need({ ...needQuery(hpaPolicy(), 3), agent }, NEVER)).toEqual({ kind: 'measured', value: 7, source: 'hpa' });
  });

  it('bounds it by need.min and need.max', async () => {
    const { source, hpas } = setup();
    hpas.set(WEB, { namespace: 'shop', name: 'web', desiredReplicas: 12, familyCanWrite: false });
    expect(await source.need({ ...needQuery(hpaPolicy({ max: 10 }), 3), agent }, NEVER)).toMatchObject({ value: 10 });
    hpas.set(WEB, { namespace: 'shop', name: 'web', desiredReplicas: 0, familyCanWrite: false });
    expect(await source.need({ ...needQuery(hpaPolicy({ min: 2 }), 3), agent }, NEVER)).toMatchObject({ value: 2 });
  });

  it("does not trust an HPA the agent's family can write: minReplicas would raise its own need", async () => {
    const { source, hpas, errors } = setup();
    hpas.set(WEB, {
      namespace: 'shop',
      name: 'web',
      desiredReplicas: 50,
      familyCanWrite: (a) => a?.username === agent.username,
    });
    const need = await source.need({ ...needQuery(hpaPolicy(), 3), agent }, NEVER);
    expect(need).toEqual({ kind: 'unavailable', reason: expect.stringContaining("the agent's family can write HorizontalPodAutoscaler shop/web") });
    if (need.kind === 'unavailable') expect(need.reason).toContain('minReplicas');
    expect(await errorCount(errors, 'hpa', 'untrusted')).toBe(1);
    // Another agent, whose family cannot write it, may rely on it.
    const other: AgentIdentity = { username: 'system:serviceaccount:agents:agent-2' };
    expect(await source.need({ ...needQuery(hpaPolicy(), 3), agent: other }, NEVER)).toMatchObject({ value: 50 });
  });

  it('does not trust an HPA when it is unknown whether the family can write it, nor without an agent', async () => {
    const { source, hpas } = setup();
    hpas.set(WEB, { namespace: 'shop', name: 'web', desiredReplicas: 5, familyCanWrite: undefined });
    expect(await source.need({ ...needQuery(hpaPolicy(), 3), agent }, NEVER)).toEqual({
      kind: 'unavailable',
      reason: expect.stringContaining('not known whether'),
    });
  });

  it.each([
    ['no HPA targets the workload', null, 'no_target', /no HorizontalPodAutoscaler targets Deployment shop\/web/],
    ['the reader does not know', undefined, 'unknown_workload', /does not know/],
    [
      'the HPA has no status yet',
      { namespace: 'shop', name: 'web', desiredReplicas: undefined, familyCanWrite: false },
      'bad_response',
      /no desired replicas/,
    ],
  ] as const)('is unavailable when %s', async (_what, hpa, reason, message) => {
    const { source, hpas, errors } = setup();
    if (hpa !== undefined) hpas.set(WEB, hpa);
    const need = await source.need({ ...needQuery(hpaPolicy(), 3), agent }, NEVER);
    expect(need.kind).toBe('unavailable');
    if (need.kind === 'unavailable') expect(need.reason).toMatch(message);
    expect(await errorCount(errors, 'hpa', reason)).toBe(1);
  });

  it('never rejects when the reader does', async () => {
    const { logger } = capturingLogger();
    const { errors } = freshErrorCounter();
    const source = new HpaLoadSource({
      hpas: { hpaFor: async () => Promise.reject(new Error('SubjectAccessReview failed')) },
      clock: testClock(),
      logger,
      errors,
    });
    expect(await source.need({ ...needQuery(hpaPolicy(), 3), agent }, NEVER)).toEqual({
      kind: 'unavailable',
      reason: expect.stringContaining('SubjectAccessReview failed'),
    });
  });
});
