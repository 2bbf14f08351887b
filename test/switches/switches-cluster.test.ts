import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main.ts';
import { SWITCH_CONFIGMAP } from '../../src/cluster/switch-store.ts';
import type { AssembledGuard } from '../../src/guard.ts';
import { FakeApiServer } from '../fake-apiserver/fake-apiserver.ts';
import { ADMIN, type Review, review, scaleReview } from '../helpers/fixtures.ts';
import { startClusterGuards } from '../helpers/cluster-guards.ts';
import { writeKubeconfig } from '../helpers/kubeconfig.ts';

// Two guard replicas against one API server: the operator's CLI (through a kubeconfig,
// as kubectl would) and an operator's annotation write the switch ConfigMap; both
// replicas apply it within 5 seconds. Every operation is an HTTP call a real API server
// would answer the same way.

let fake: FakeApiServer;
let dir: string;
let kubeconfig: string;
const guards: AssembledGuard[] = [];

beforeAll(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  dir = await mkdtemp(join(tmpdir(), 'rg-switch-cluster-'));
  kubeconfig = await writeKubeconfig(dir, fake.url);
  guards.push(...(await startClusterGuards(fake.url, dir, ['guard-a', 'guard-b'])));
}, 30_000);
afterAll(async () => {
  for (const g of guards) await g.close();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

async function allowed(g: AssembledGuard, body: Review): Promise<{ allowed: boolean; message?: string; warnings?: string[] }> {
  const res = await g.app.webhook.inject({ method: 'POST', url: '/validate?timeout=10s', payload: { ...body, request: { ...body.request, uid: `${body.request.uid}-${Math.random()}` } } });
  expect(res.statusCode).toBe(200);
  const r = (res.json() as { response: { allowed: boolean; status?: { message: string }; warnings?: string[] } }).response;
  return { allowed: r.allowed, message: r.status?.message, warnings: r.warnings };
}

/** Both replicas answer growth of agent-1's `web` with `expected` within 5 seconds. */
async function bothWithin5s(expected: boolean): Promise<void> {
  const started = Date.now();
  for (const g of guards) {
    await expect.poll(async () => (await allowed(g, scaleReview('web', 1, 2))).allowed, { timeout: 5000 - (Date.now() - started), interval: 100 }).toBe(expected);
  }
}

const cli = async (...args: string[]) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
};

const switchData = () => (fake.get('configmaps', 'replica-guard', SWITCH_CONFIGMAP)?.data ?? {}) as Record<string, string>;

describe('freeze on a cluster, two replicas', () => {
  it('at agent, namespace and global scope, through the CLI, reaches both replicas within 5 s, and so does unfreeze', async () => {
    await bothWithin5s(true);
    for (const scope of [['--agent', 'agents:agent-1'], ['--namespace', 'agents'], ['--all']]) {
      const frozen = await cli('freeze', ...scope, '--reason', 'drill', '--kubeconfig', kubeconfig, '--context', 'test');
      expect(frozen.code, frozen.err).toBe(0);
      await bothWithin5s(false);
      const denial = await allowed(guards[1] as AssembledGuard, scaleReview('web', 1, 2));
      expect(denial.message).toContain(`in ConfigMap replica-guard/${SWITCH_CONFIGMAP}`);
      // Scaling down stays allowed while frozen.
      expect((await allowed(guards[0] as AssembledGuard, scaleReview('web', 2, 1))).allowed).toBe(true);
      expect((await cli('unfreeze', ...scope, '--kubeconfig', kubeconfig)).code).toBe(0);
      await bothWithin5s(true);
    }
    expect(Object.keys(switchData()).filter((k) => !k.startsWith('copied.'))).toEqual([]);
  }, 40_000);

  it("copies an operator's ServiceAccount annotation, which survives the agent deleting and recreating the account", async () => {
    fake.put('serviceaccounts', { metadata: { name: 'agent-1', namespace: 'agents' } });
    const annotate = review('serviceaccount-annotate-agent', {
      userInfo: ADMIN,
      annotations: { 'replica-guard.io/freeze': 'spending too fast' },
      unset: ['oldObject.metadata.annotations'],
    });
    const answer = await allowed(guards[0] as AssembledGuard, annotate);
    expect(answer.allowed).toBe(true);
    expect(JSON.parse(switchData()['freeze.agent.agents.agent-1'] ?? '{}')).toMatchObject({ by: 'admin', reason: 'spending too fast', source: 'annotation' });
    await bothWithin5s(false);

    // The agent may not remove it...
    const remove = review('serviceaccount-annotate-agent');
    expect((await allowed(guards[1] as AssembledGuard, remove)).allowed).toBe(false);
    // ...but may delete its account; recreated without the annotation, it is still frozen.
    const del = review('serviceaccount-annotate-agent', { set: [['operation', 'DELETE'], ['object', null]] });
    expect((await allowed(guards[1] as AssembledGuard, del)).allowed).toBe(true);
    fake.remove('serviceaccounts', 'agents', 'agent-1');
    fake.put('serviceaccounts', { metadata: { name: 'agent-1', namespace: 'agents' } });
    await new Promise((r) => setTimeout(r, 1500));
    for (const g of guards) expect((await allowed(g, scaleReview('web', 1, 2))).allowed).toBe(false);

    const listed = await cli('switches', '-o', 'json', '--kubeconfig', kubeconfig);
    expect(JSON.parse(listed.out)).toEqual([expect.objectContaining({ switch: 'freeze.agent.agents.agent-1', by: 'admin' })]);
    await cli('unfreeze', '--agent', 'agents:agent-1', '--kubeconfig', kubeconfig);
    await bothWithin5s(true);
  }, 30_000);

  it("copies an annotation the webhooks never saw (set directly, or while no guard ran), once: an unfreeze holds", async () => {
    fake.put('namespaces', { metadata: { name: 'agents', annotations: { 'replica-guard.io/freeze': 'budget exceeded' } } });
    await bothWithin5s(false);
    expect(JSON.parse(switchData()['freeze.namespace.agents'] ?? '{}')).toMatchObject({ reason: 'budget exceeded', source: 'annotation' });
    expect((await cli('unfreeze', '--namespace', 'agents', '--kubeconfig', kubeconfig)).code).toBe(0);
    await bothWithin5s(true);
    // Another edit of the Namespace, the annotation still on it: no new freeze.
    fake.put('namespaces', { metadata: { name: 'agents', labels: { team: 'a' }, annotations: { 'replica-guard.io/freeze': 'budget exceeded' } } });
    await new Promise((r) => setTimeout(r, 1500));
    for (const g of guards) expect((await allowed(g, scaleReview('web', 1, 2))).allowed).toBe(true);
    // Removed and set again: a new request to freeze.
    fake.put('namespaces', { metadata: { name: 'agents' } });
    await expect.poll(() => switchData()['copied.namespace.agents'], { timeout: 3000 }).toBeUndefined();
    fake.put('namespaces', { metadata: { name: 'agents', annotations: { 'replica-guard.io/freeze': 'budget exceeded' } } });
    await bothWithin5s(false);
    await cli('unfreeze', '--namespace', 'agents', '--kubeconfig', kubeconfig);
    await bothWithin5s(true);
  }, 30_000);

  it('a replica that cannot read the switches keeps the last ones read', async () => {
    await cli('freeze', '--all', '--kubeconfig', kubeconfig);
    await bothWithin5s(false);
    fake.intercept((req) => (req.path.endsWith(`/configmaps/${SWITCH_CONFIGMAP}`) && req.method === 'GET' ? { status: 503 } : undefined));
    await new Promise((r) => setTimeout(r, 1500));
    for (const g of guards) expect((await allowed(g, scaleReview('web', 1, 2))).allowed).toBe(false);
    fake.intercept(undefined);
    await cli('unfreeze', '--all', '--kubeconfig', kubeconfig);
    await bothWithin5s(true);
  }, 20_000);
});
