import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main.ts';
import { policy } from '../helpers/guard.ts';
import { type ClusterGuard, startGuardedPlane, registerWebhooks, startClusterGuard, waitForWebhooks } from './cluster-guard.ts';
import { ADMIN, ControlPlane, type Identity, serviceAccountIdentity } from './control-plane.ts';
import { create, cronJob, daemonSet, pathOf, refusal, replicated, type WorkloadResource, pod } from './workloads.ts';

// The safety switches against a real API server: the operator's CLI with the admin's
// kubeconfig, the agent's attempts with the agent's token through the API server's own
// webhook calls, and a shutdown and restore validated by the real API.

const agent = serviceAccountIdentity('agents', 'agent-1');

let plane: ControlPlane;
let guard: ClusterGuard;

beforeAll(async () => {
  plane = await startGuardedPlane([agent], ['agents']);
  // The agent may edit its ServiceAccount as far as RBAC goes: only the guard stops it.
  await plane.must(ADMIN, '/apis/rbac.authorization.k8s.io/v1/namespaces/agents/roles', {
    body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'edit-sa' }, rules: [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'update', 'patch'] }] },
  });
  await plane.must(ADMIN, '/apis/rbac.authorization.k8s.io/v1/namespaces/agents/rolebindings', {
    body: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'edit-sa' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'edit-sa' },
      subjects: [{ kind: 'ServiceAccount', name: 'agent-1', namespace: 'agents' }],
    },
  });
  guard = await startClusterGuard(plane, policy('roomy', { mode: 'enforce', agents: { serviceAccounts: ['agents:*'] }, need: { onUnavailable: 'caps' }, limits: { perWorkload: 100 } }), {
    doctor: { enabled: false },
  });
  await registerWebhooks(plane, [{ guard }]);
  await waitForWebhooks(plane, agent, 'agents', [guard]);
}, 240_000);

afterAll(async () => {
  await guard?.stop();
  await plane?.stop();
});

async function cli(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([...args, '--kubeconfig', plane.kubeconfigPath(ADMIN)], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const scale = (who: Identity, name: string, replicas: number) =>
  plane.api(who, `${pathOf('deployments', 'agents', name)}/scale`, {
    method: 'PUT',
    body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name, namespace: 'agents' }, spec: { replicas } },
  });

describe('freeze on a real API server', () => {
  it("stops the agent's growth within 5 s of the CLI, allows scaling down, and lifts with unfreeze", async () => {
    expect((await create(plane, agent, 'deployments', replicated('deployments', 'agents', 'web', 1, 'agent-1'))).status).toBe(201);
    expect((await cli('freeze', '--agent', 'agents:agent-1', '--reason', 'drill')).code).toBe(0);
    // Each probe asks for one more than the last: a probe let through raises the count.
    let asked = 1;
    await expect.poll(async () => (await scale(agent, 'web', ++asked)).status, { timeout: 5000, interval: 200 }).toBe(403);
    const denied = await scale(agent, 'web', asked + 1);
    expect(refusal(denied)).toContain('frozen by switch freeze.agent.agents.agent-1 in ConfigMap replica-guard/replica-guard-switches');
    expect((await scale(agent, 'web', 0)).status).toBe(200);
    expect((await cli('unfreeze', '--agent', 'agents:agent-1')).code).toBe(0);
    await expect.poll(async () => (await scale(agent, 'web', 2)).status, { timeout: 5000, interval: 200 }).toBe(200);
  });

  it("copies an operator's kubectl annotate on the Namespace (which the webhooks, agents only, never see)", async () => {
    let asked = 3;
    await scale(agent, 'web', asked);
    const annotated = await plane.kubectl(ADMIN, ['annotate', 'namespace', 'agents', 'replica-guard.io/freeze=cost spike']);
    expect(annotated.code, annotated.stderr).toBe(0);
    await expect.poll(async () => (await scale(agent, 'web', ++asked)).status, { timeout: 5000, interval: 200 }).toBe(403);
    expect(refusal(await scale(agent, 'web', asked + 1))).toContain('frozen by switch freeze.namespace.agents');
    const listed = await cli('switches', '-o', 'json');
    expect(JSON.parse(listed.out)).toEqual([expect.objectContaining({ switch: 'freeze.namespace.agents', reason: 'cost spike' })]);
    expect((await cli('unfreeze', '--namespace', 'agents')).code).toBe(0);
    await expect.poll(async () => (await scale(agent, 'web', ++asked)).status, { timeout: 5000, interval: 200 }).toBe(200);
  });

  it('refuses the agent removing the freeze annotation from its own ServiceAccount', async () => {
    await plane.must(ADMIN, '/api/v1/namespaces/agents/serviceaccounts', {
      body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'agent-1', namespace: 'agents', annotations: { 'replica-guard.io/freeze': 'true' } } },
    });
    const sa = await plane.must<{ metadata: Record<string, unknown> }>(agent, '/api/v1/namespaces/agents/serviceaccounts/agent-1');
    const { annotations: _gone, ...metadata } = sa.metadata;
    const answer = await plane.api(agent, '/api/v1/namespaces/agents/serviceaccounts/agent-1', { method: 'PUT', body: { ...sa, metadata } });
    expect(answer.status).toBe(403);
    expect(refusal(answer)).toContain('agents may not set, change or remove "replica-guard.io/freeze"');
    const still = await plane.must<{ metadata: { annotations?: Record<string, string> } }>(ADMIN, '/api/v1/namespaces/agents/serviceaccounts/agent-1');
    expect(still.metadata.annotations?.['replica-guard.io/freeze']).toBe('true');
  });
});

describe('shutdown and restore on a real API server', () => {
  const FAMILY: readonly [WorkloadResource, string][] = [
    ['deployments', 'fam-web'],
    ['statefulsets', 'fam-db'],
    ['horizontalpodautoscalers', 'fam-hpa'],
    ['cronjobs', 'fam-cron'],
    ['daemonsets', 'fam-ds'],
    ['pods', 'fam-pod'],
  ];
  const specs = async () =>
    Object.fromEntries(
      await Promise.all(
        FAMILY.map(async ([resource, name]) => {
          const answer = await plane.api<{ spec: unknown }>(ADMIN, pathOf(resource, 'agents', name));
          return [name, answer.status === 404 ? 'gone' : answer.body.spec] as const;
        }),
      ),
    );

  it('brings a family to zero with the operator credentials, changes nothing more on a second run, and restores every field', async () => {
    const hpa = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'fam-hpa', namespace: 'agents' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'fam-web' }, minReplicas: 1, maxReplicas: 5 },
    };
    const family: readonly (readonly [WorkloadResource, { metadata: { namespace: string } }])[] = [
      ['deployments', replicated('deployments', 'agents', 'fam-web', 3, 'agent-2')],
      ['statefulsets', replicated('statefulsets', 'agents', 'fam-db', 2, 'agent-2')],
      ['cronjobs', cronJob('agents', 'fam-cron', 1, 'agent-2')],
      ['daemonsets', daemonSet('agents', 'fam-ds', 'agent-2', { disk: 'ssd' })],
      ['pods', pod('agents', 'fam-pod', 'agent-2')],
      ['horizontalpodautoscalers', hpa],
    ];
    for (const [resource, object] of family) {
      const answer = await create(plane, ADMIN, resource, object);
      expect(answer.status, refusal(answer)).toBe(201);
    }
    const before = await specs();

    const run = await cli('shutdown', '--agent', 'agents:agent-2', '-o', 'json');
    expect(run.code, run.err).toBe(0);
    const after = await specs();
    expect(after['fam-hpa']).toBe('gone');
    expect(after['fam-pod']).toBe('gone');
    expect(after['fam-web']).toMatchObject({ replicas: 0 });
    expect(after['fam-db']).toMatchObject({ replicas: 0 });
    expect(after['fam-cron']).toMatchObject({ suspend: true });
    expect(after['fam-ds']).toMatchObject({ template: { spec: { nodeSelector: { disk: 'ssd', 'replica-guard.io/shutdown': 'true' } } } });

    const again = await cli('shutdown', '--agent', 'agents:agent-2', '-o', 'json');
    expect(again.code, again.err).toBe(0);
    expect((JSON.parse(again.out) as { result: string }[]).map((r) => r.result)).toEqual(Array(6).fill('unchanged'));

    const restored = await cli('restore', '--agent', 'agents:agent-2', '--unfreeze');
    expect(restored.code, restored.err).toBe(0);
    expect({ ...(await specs()), 'fam-pod': 'not recreated' }).toEqual({ ...before, 'fam-pod': 'not recreated' });
  }, 60_000);
});
