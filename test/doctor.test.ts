import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.ts';
import { startBypassMonitor } from '../src/cluster/bypass-monitor.ts';
import { activePolicies } from './helpers/guard.ts';
import { FakeApiServer } from './fake-apiserver/fake-apiserver.ts';
import { writeKubeconfig } from './helpers/kubeconfig.ts';
import { capturingLogger, parseExposition, testClock } from './helpers/telemetry.ts';

// Whether the agents can get around the guard: SubjectAccessReviews of each policy's agent
// identities, answered by the (fake) API server from RBAC-like rules the test plants.

let fake: FakeApiServer;
let dir: string;
let kubeconfig: string;

const POLICY = `apiVersion: replica-guard.io/v1alpha1
kind: ReplicaPolicy
metadata: { name: agents }
spec:
  mode: enforce
  agents: { serviceAccounts: ["agents:*"], users: ["ci-bot"] }
`;

beforeEach(async () => {
  fake = await FakeApiServer.start();
  dir = await mkdtemp(join(tmpdir(), 'rg-doctor-'));
  kubeconfig = await writeKubeconfig(dir, fake.url);
  await writeFile(join(dir, 'agents.yaml'), POLICY);
  for (const [namespace, name] of [
    ['agents', 'agent-1'],
    ['agents', 'agent-2'],
    ['kube-system', 'deployment-controller'],
  ] as const) {
    fake.put('serviceaccounts', { metadata: { namespace, name } });
  }
});
afterEach(async () => {
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

const plant = () =>
  fake.setAccessRules([
    // agent-1 alone may impersonate; every service account of agents may write the guard's ConfigMaps.
    { users: ['system:serviceaccount:agents:agent-1'], verbs: ['impersonate'], apiGroups: [''], resources: ['users'] },
    { groups: ['system:serviceaccounts:agents'], verbs: ['update'], apiGroups: [''], resources: ['configmaps'], namespaces: ['replica-guard'] },
    // The controller is no agent: its grants are not looked at.
    { users: ['system:serviceaccount:kube-system:deployment-controller'], verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
  ]);

async function doctor(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['doctor', '--policies', dir, '--kubeconfig', kubeconfig, ...args], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('replica-guard doctor', () => {
  it('finds a planted dangerous permission and names what to remove', async () => {
    plant();
    const run = await doctor('-o', 'json');
    expect(run.code).toBe(1);
    const rows = JSON.parse(run.out) as { agent: string; permission: string; remove: string }[];
    expect(rows.map((r) => `${r.agent} ${r.permission} ${r.remove}`).sort()).toEqual([
      'system:serviceaccount:agents:agent-1 impersonate impersonate users (cluster-wide)',
      'system:serviceaccount:agents:agent-1 write-guard-namespace update configmaps in replica-guard',
      'system:serviceaccount:agents:agent-2 write-guard-namespace update configmaps in replica-guard',
    ]);
    // Each identity was asked about with the groups its token authenticates with.
    expect(fake.accessReviews.some((r) => r.user === 'system:serviceaccount:agents:agent-2' && r.groups.includes('system:serviceaccounts:agents'))).toBe(true);
    expect(fake.accessReviews.some((r) => r.user === 'ci-bot')).toBe(true);
    expect(fake.accessReviews.some((r) => r.user?.includes('deployment-controller'))).toBe(false);
  });

  it('exits 0 with a table when nothing is found, and answers --help', async () => {
    const run = await doctor();
    expect(run.code).toBe(0);
    expect(run.out).toContain('No resources found.');
    expect(run.out).toContain('3 agent identities checked, 0 findings');
    const help = await runCli(['doctor', '--help'], { out: () => undefined, err: () => undefined });
    expect(help).toBe(0);
    expect((await doctor('-o', 'csv')).code).toBe(2);
  });
});

describe('the periodic check in the guard', () => {
  it('sets a metric per agent and permission and logs each finding, and clears both when the grant goes', async () => {
    plant();
    const registry = new Registry();
    const { logger, lines } = capturingLogger();
    const clock = testClock();
    const monitor = startBypassMonitor({
      connection: { baseUrl: fake.url },
      policies: () => activePolicies(POLICY).policies,
      guardNamespace: 'replica-guard',
      registry,
      logger,
      clock,
      intervalMs: 3_600_000,
    });
    try {
      await monitor.runOnce();
      const value = async (agent: string, permission: string) =>
        parseExposition(await registry.metrics()).find(
          (s) => s.name === 'replica_guard_agent_bypass_permission' && s.labels.agent === `system:serviceaccount:agents:${agent}` && s.labels.permission === permission,
        )?.value;
      expect(await value('agent-1', 'impersonate')).toBe(1);
      expect(await value('agent-2', 'impersonate')).toBe(0);
      expect(await value('agent-2', 'write-guard-namespace')).toBe(1);
      const warned = lines.filter((l) => l.level === 'warn' || l.level === 40);
      expect(warned.map((l) => l.msg)).toContain(
        'agent system:serviceaccount:agents:agent-1 can get around the guard (impersonate): remove impersonate users (cluster-wide)',
      );

      // The grants are removed; answers are reused for 30 s, the check runs every few minutes.
      fake.setAccessRules([]);
      clock.advance(31_000);
      await monitor.runOnce();
      expect(await value('agent-1', 'impersonate')).toBe(0);
      expect(lines.map((l) => l.msg)).toContain('agent system:serviceaccount:agents:agent-1 no longer holds impersonate');
    } finally {
      monitor.stop();
    }
  });
});
