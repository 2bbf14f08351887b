import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { configSchema } from '../src/config.ts';
import { ledgerConfigMapName } from '../src/cluster/kube-ledger.ts';
import { parseState } from '../src/core/ledger-state.ts';
import { type AssembledGuard, assembleGuard } from '../src/guard.ts';
import { FakeApiServer } from './fake-apiserver/fake-apiserver.ts';
import { review } from './helpers/fixtures.ts';
import { deployment, node, ownerOf, pod, replicaSet } from './view/view-helpers.ts';

// The guard wired for a cluster (assembleGuard with a connection), against the fake API
// server: the view supplies the Scale's parent and the family, the view's losses put the
// family under pressure, and decisions are recorded in the shared ledger's ConfigMaps.

let fake: FakeApiServer;
let dir: string;
let guard: AssembledGuard | undefined;

beforeEach(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  dir = await mkdtemp(join(tmpdir(), 'rg-cluster-'));
});
afterEach(async () => {
  await guard?.close();
  guard = undefined;
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

const AGENT = 'system:serviceaccount:agents:agent-1';

const POLICY = `apiVersion: replica-guard.io/v1alpha1
kind: ReplicaPolicy
metadata: { name: cluster }
spec:
  mode: enforce
  agents: { serviceAccounts: ["agents:*"] }
  need: { static: 8, onUnavailable: deny }
  limits: { headroom: 1, step: 3, perFamily: 8 }
  underPressure: { window: 10m, limits: { step: 0 } }
`;

async function start(): Promise<AssembledGuard> {
  await writeFile(join(dir, 'policy.yaml'), POLICY);
  const config = configSchema.parse({
    policies: { dir },
    tls: { dir: join(dir, 'certs') },
    view: { bookmarkInterval: '100ms', stallFactor: 5, requestTimeout: '2s', lossGrace: '2s', lossSettle: '200ms' },
    logLevel: 'silent',
  });
  guard = await assembleGuard(config, { logger: pino({ level: 'silent' }), clock: systemClock, cluster: { baseUrl: fake.url } });
  return guard;
}

async function validate(g: AssembledGuard, body: unknown) {
  const res = await g.app.webhook.inject({ method: 'POST', url: '/validate?timeout=10s', payload: body as object });
  expect(res.statusCode).toBe(200);
  return (res.json() as { response: { allowed: boolean; status?: { message: string } } }).response;
}

/** agent-web: 3 replicas through its ReplicaSet and 3 pods, as the controllers would have made them. */
function seedAgentWeb(): { uid: string; pods: string[] } {
  for (const n of ['n1', 'n2', 'n3']) fake.put('nodes', node(n));
  const web = fake.put('deployments', deployment('agents', 'agent-web', 3));
  const rs = fake.put('replicasets', replicaSet('agents', 'agent-web-1', 3, ownerOf(web, 'Deployment')));
  const pods = ['a', 'b', 'c'].map((p) => fake.put('pods', pod('agents', `agent-web-1-${p}`, ownerOf(rs, 'ReplicaSet'))).metadata.name);
  return { uid: web.metadata.uid ?? '', pods };
}

const scaleWeb = (uid: string, from: number, to: number) =>
  review('deployment-scale-agent-10', { oldReplicas: from, replicas: to, set: [['object.metadata.uid', uid]] });

async function ready(g: AssembledGuard): Promise<void> {
  await expect.poll(() => g.readiness().ready, { timeout: 5000, interval: 20 }).toBe(true);
}

describe('the guard on a cluster', () => {
  it('turns ready after the first sync and judges a Scale against its parent from the view', async () => {
    const { uid } = seedAgentWeb();
    const g = await start();
    await ready(g);
    // The parent is known, so onUnavailable: deny does not apply: need 8 + headroom, step 3.
    expect((await validate(g, scaleWeb(uid, 3, 5))).allowed).toBe(true);
    const big = await validate(g, scaleWeb(uid, 3, 7));
    expect(big.allowed).toBe(false);
    expect(big.status?.message).toMatch(/allows at most 6 \(perFamily 8 potential instances, 0 held by the rest of the family/);
    // The decision was recorded in the shared ledger, a ConfigMap in the guard's namespace.
    expect(fake.requests.some((r) => r.startsWith('PUT /api/v1/namespaces/replica-guard/configmaps/') || r.startsWith('POST /api/v1/namespaces/replica-guard/configmaps'))).toBe(true);
  });

  it("counts a clone in another namespace, written by someone else, toward the family's instances", async () => {
    const { uid } = seedAgentWeb();
    const g = await start();
    await ready(g);
    expect((await validate(g, scaleWeb(uid, 3, 5))).allowed).toBe(true);
    // A copy of agent-web in agents-b (same account name, image and args): 2 + 1 surge.
    fake.put('deployments', deployment('agents-b', 'agent-web-copy', 2));
    await expect
      .poll(async () => (await validate(g, scaleWeb(uid, 3, 5))).allowed, { timeout: 5000, interval: 50 })
      .toBe(false);
    const denied = await validate(g, scaleWeb(uid, 3, 5));
    expect(denied.status?.message).toMatch(/perFamily 8 potential instances, 3 held by the rest of the family/);
  });

  it("forgets a deleted workload's provenance in the shared ledger at the agent's next decision", async () => {
    const { uid: web } = seedAgentWeb();
    // Runs as another account with another image: in the family only by provenance.
    const api = fake.put('deployments', deployment('agents', 'agent-api', 1, 'worker', 'registry.local/api:1')).metadata.uid ?? '';
    const scaleApi = (from: number, to: number) =>
      review('deployment-scale-agent-10', {
        oldReplicas: from,
        replicas: to,
        set: [
          ['object.metadata.uid', api],
          ['object.metadata.name', 'agent-api'],
          ['oldObject.metadata.name', 'agent-api'],
          ['name', 'agent-api'],
        ],
      });
    const g = await start();
    await ready(g);
    const provenance = () => {
      const data = fake.get('configmaps', 'replica-guard', ledgerConfigMapName(AGENT))?.data as { state?: string } | undefined;
      return parseState(data?.state).state.provenance.map((p) => p.uid);
    };
    expect((await validate(g, scaleWeb(web, 3, 4))).allowed).toBe(true);
    expect((await validate(g, scaleApi(1, 2))).allowed).toBe(true);
    // The second growth is spent from the guard's allowance lease: written just after its answer.
    await expect.poll(provenance, { timeout: 5000 }).toEqual([web, api]);
    fake.remove('deployments', 'agents', 'agent-web');
    let to = 2;
    await expect
      .poll(
        async () => {
          // A new episode each time (1 → 3, 1 → 4...): every one is recorded and written.
          to++;
          await validate(g, scaleApi(1, to));
          return provenance();
        },
        { timeout: 5000, interval: 50 },
      )
      .toEqual([api]);
  });

  it('puts the family under pressure after a pod is deleted by someone else, and then holds growth', async () => {
    const { uid, pods } = seedAgentWeb();
    const g = await start();
    await ready(g);
    expect((await validate(g, scaleWeb(uid, 3, 4))).allowed).toBe(true);
    // Another user deletes a pod while the ReplicaSet still wants 3: a loss.
    fake.remove('pods', 'agents', pods[0] ?? '');
    await expect
      .poll(async () => (await g.metrics.registry.getSingleMetricAsString('replica_guard_losses_total')).includes('kind="pod"} 1'), {
        timeout: 5000,
        interval: 50,
      })
      .toBe(true);
    const pressed = await validate(g, scaleWeb(uid, 3, 4));
    expect(pressed.allowed).toBe(false);
    expect(pressed.status?.message).toMatch(/3 \+ step 0/);
  });
});
