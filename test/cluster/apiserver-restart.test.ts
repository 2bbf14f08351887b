import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policy } from '../helpers/guard.ts';
import { httpGet } from '../helpers/process.ts';
import { type ClusterGuard, startGuardedPlane, registerWebhooks, startClusterGuard, waitForWebhooks } from './cluster-guard.ts';
import { ADMIN, ControlPlane, serviceAccountIdentity } from './control-plane.ts';
import { create, deployment, pathOf, refusal, storedReplicas } from './workloads.ts';

// The API server goes away and comes back while the guard runs: the view reconnects,
// /readyz stays ready throughout (every replica unready at once would lock the agents
// out), and decisions continue on what the API server holds after the restart.

const agent = serviceAccountIdentity('agents', 'survivor');

let plane: ControlPlane;
let guard: ClusterGuard;

beforeAll(async () => {
  plane = await startGuardedPlane([agent], ['agents']);
  guard = await startClusterGuard(
    plane,
    policy('restart', {
      mode: 'enforce',
      agents: { serviceAccounts: ['agents:*'] },
      need: { static: 3, onUnavailable: 'deny' },
      limits: { headroom: 1, perFamily: 12 },
    }),
  );
  await registerWebhooks(plane, [{ guard }]);
  await waitForWebhooks(plane, agent, 'agents', [guard]);
}, 240_000);

afterAll(async () => {
  await guard?.stop();
  await plane?.stop();
});

const scale = (name: string, replicas: number) =>
  plane.api(agent, `${pathOf('deployments', 'agents', name)}/scale`, {
    method: 'PATCH',
    body: { spec: { replicas } },
    contentType: 'application/merge-patch+json',
  });

describe('an API server restart under a running guard', () => {
  it('keeps /readyz ready, reconnects the view, and keeps deciding', async () => {
    const first = await create(plane, agent, 'deployments', deployment('agents', 'before', 2, 'survivor'));
    expect(first.status, refusal(first)).toBe(201);

    const readiness: number[] = [];
    const watching = (async () => {
      const until = Date.now() + 12_000;
      while (Date.now() < until) {
        readiness.push((await httpGet(`${guard.process.opsUrl}/readyz`)).status);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    await plane.restartApiserver(3_000);
    await watching;
    expect(readiness.length).toBeGreaterThan(20);
    expect(new Set(readiness)).toEqual(new Set([200]));

    // Written after the restart, so only a reconnected view knows it: a Scale of an
    // unseen parent is an unknown fact, which this policy denies.
    await plane.must(ADMIN, pathOf('deployments', 'agents'), { body: deployment('agents', 'after', 1, 'survivor') });
    await expect.poll(async () => (await scale('after', 2)).status, { timeout: 30_000, interval: 500 }).toBe(200);
    expect(await storedReplicas(plane, 'deployments', 'agents', 'after')).toBe(2);

    const over = await scale('before', 9);
    expect(over.status).toBe(403);
    expect(refusal(over)).toMatch(/from 2 to 9/);
    expect(await storedReplicas(plane, 'deployments', 'agents', 'before')).toBe(2);
    expect((await httpGet(`${guard.process.opsUrl}/readyz`)).status).toBe(200);
  });
});
