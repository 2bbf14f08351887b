import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policy } from '../helpers/guard.ts';
import type { LogLine } from '../helpers/telemetry.ts';
import { type ClusterGuard, startGuardedPlane, GUARD_NAMESPACE, registerWebhooks, startClusterGuard, waitForWebhooks } from './cluster-guard.ts';
import { ADMIN, ControlPlane, serviceAccountIdentity } from './control-plane.ts';
import { create, deployment, pathOf, refusal } from './workloads.ts';

// Two guard processes behind one real API server, sharing the ConfigMap ledger: the API
// server sends each write to one of them (split by the object's name), and a burst of
// agent writes through both never stores more than the policy allows.

const burster = serviceAccountIdentity('agents', 'burster');
const prober = serviceAccountIdentity('agents', 'prober');
const PER_FAMILY = 8;

let plane: ControlPlane;
let guards: ClusterGuard[] = [];

beforeAll(async () => {
  plane = await startGuardedPlane([burster, prober], ['agents']);
  const policies = policy('burst', {
    mode: 'enforce',
    agents: { serviceAccounts: ['agents:*'] },
    need: { static: 3, onUnavailable: 'deny' },
    limits: { headroom: 1, perFamily: PER_FAMILY },
  });
  guards = [await startClusterGuard(plane, policies), await startClusterGuard(plane, policies)];
  const [a, b] = guards;
  if (a === undefined || b === undefined) throw new Error('two guards');
  // Names ending in an even digit go to the first guard, odd ones to the second.
  const even = "request.name.matches('[02468]$')";
  await registerWebhooks(plane, [
    { guard: a, condition: even },
    { guard: b, condition: `!(${even})` },
  ]);
  await waitForWebhooks(plane, prober, 'agents', guards);
}, 240_000);

afterAll(async () => {
  for (const g of guards) await g.stop();
  await plane?.stop();
});

const auditOf = (line: LogLine) => (typeof line.audit === 'object' && line.audit !== null ? line.audit : {}) as { agent?: string; webhook?: string };

function burstDeployment(name: string) {
  const d = deployment('agents', name, 2, 'burster');
  const [container] = d.spec.template.spec.containers;
  return { ...d, spec: { ...d.spec, template: { ...d.spec.template, spec: { ...d.spec.template.spec, containers: [{ ...container, image: `registry.example/${name}:1` }] } } } };
}

describe('two guards, one API server, one ledger', () => {
  it('a burst of creates through both never stores more than perFamily', async () => {
    const before = await Promise.all(guards.map((g) => g.process.lines.length));
    // 16 workloads of 2 instances, 8 at a time, alternating guards: twice the family's room.
    // Each runs its own image: a workload with the image of another would be a clone.
    const names = Array.from({ length: 16 }, (_, i) => `burst-${i}`);
    const answers = [];
    for (let i = 0; i < names.length; i += 8) {
      answers.push(
        ...(await Promise.all(names.slice(i, i + 8).map((n) => create(plane, burster, 'deployments', burstDeployment(n))))),
      );
    }
    const accepted = answers.filter((a) => a.status === 201).length;
    const refused = answers.filter((a) => a.status === 403);
    expect(accepted + refused.length, JSON.stringify(answers.filter((a) => a.status !== 201 && a.status !== 403).map(refusal))).toBe(16);
    expect(accepted).toBeGreaterThan(0);
    for (const r of refused) expect(refusal(r)).toMatch(/perFamily/);

    const stored = await plane.must<{ items: { metadata: { name: string }; spec: { replicas: number } }[] }>(ADMIN, pathOf('deployments', 'agents'));
    const burst = stored.items.filter((d) => d.metadata.name.startsWith('burst-'));
    const instances = burst.reduce((sum, d) => sum + d.spec.replicas, 0);
    expect(instances).toBeLessThanOrEqual(PER_FAMILY);
    expect(burst).toHaveLength(accepted);
    // Both guards decided part of the burst (an audit line follows the write of growth admitted from a lease).
    for (const [i, g] of guards.entries()) {
      await expect
        .poll(() => g.process.lines.slice(before[i]).some((l) => auditOf(l).agent === burster.user && auditOf(l).webhook === 'validate'), { timeout: 5000, message: `guard ${i}` })
        .toBe(true);
    }
    // One ledger ConfigMap for the agent, in the guard's namespace.
    const maps = await plane.must<{ items: { metadata: { name: string } }[] }>(ADMIN, `/api/v1/namespaces/${GUARD_NAMESPACE}/configmaps`);
    expect(maps.items.filter((m) => m.metadata.name.includes('burster'))).toHaveLength(1);
  });
});
