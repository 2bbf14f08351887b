import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { KubeLedger } from '../src/cluster/kube-ledger.ts';
import { configSchema } from '../src/config.ts';
import { addProvenance } from '../src/core/ledger-state.ts';
import { type AssembledGuard, assembleGuard } from '../src/guard.ts';
import { FakeApiServer, type KubeObject } from './fake-apiserver/fake-apiserver.ts';
import { AGENT, review } from './helpers/fixtures.ts';
import { policy } from './helpers/guard.ts';
import { node, ownerOf } from './view/view-helpers.ts';

// The metrics-api and hpa load sources through the whole guard in cluster mode
// (assembleGuard with a connection) against the fake API server: the view supplies the
// workload's pods and CPU requests and the HPA targeting it, the fake stands in for
// metrics-server and answers SubjectAccessReviews from rules each test sets, and the
// need those give is what the policy judges the Scale request by.

let fake: FakeApiServer;
let dir: string;
let guard: AssembledGuard | undefined;

beforeEach(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
  dir = await mkdtemp(join(tmpdir(), 'rg-cluster-load-'));
});
afterEach(async () => {
  await guard?.close();
  guard = undefined;
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

// onUnavailable: deny makes a fallback visible: growth is denied, with the source's reason.
const METRICS_POLICY = policy('cpu', { mode: 'enforce', need: { metricsApi: { targetCpuUtilization: 50 }, onUnavailable: 'deny' } });
const HPA_POLICY = policy('hpa', { mode: 'enforce', need: { hpa: {}, onUnavailable: 'deny' } });

async function start(policyYaml: string, cluster = true): Promise<AssembledGuard> {
  await writeFile(join(dir, 'policy.yaml'), policyYaml);
  const config = configSchema.parse({
    policies: { dir },
    tls: { dir: join(dir, 'certs') },
    view: { bookmarkInterval: '100ms', stallFactor: 5, requestTimeout: '2s' },
    logLevel: 'silent',
  });
  guard = await assembleGuard(config, {
    logger: pino({ level: 'silent' }),
    clock: systemClock,
    ...(cluster ? { cluster: { baseUrl: fake.url } } : {}),
  });
  await expect.poll(() => guard?.readiness().ready, { timeout: 5000, interval: 20 }).toBe(true);
  return guard;
}

async function validate(g: AssembledGuard, body: unknown) {
  const res = await g.app.webhook.inject({ method: 'POST', url: '/validate?timeout=10s', payload: body as object });
  expect(res.statusCode).toBe(200);
  return (res.json() as { response: { allowed: boolean; status?: { message: string } } }).response;
}

const LABELS = { app: 'agent-web' };
const container = (cpu: string) => ({ name: 'main', image: 'registry.local/agent:1.0', args: ['--serve'], resources: { requests: { cpu, memory: '256Mi' } } });

/**
 * agent-web: a Deployment at 3 replicas, its ReplicaSet and 3 running pods each requesting
 * 500m, as the controllers would have made them; each pod uses `usage` as metrics-server
 * reports it.
 */
function seedAgentWeb(usage: string): { uid: string; pods: string[] } {
  for (const n of ['n1', 'n2', 'n3']) fake.put('nodes', node(n));
  const template = { metadata: { labels: LABELS }, spec: { serviceAccountName: 'agent-1', containers: [container('500m')] } };
  const web = fake.put('deployments', {
    metadata: { namespace: 'agents', name: 'agent-web' },
    spec: { replicas: 3, selector: { matchLabels: LABELS }, template },
  });
  const rs = fake.put('replicasets', {
    metadata: {
      namespace: 'agents',
      name: 'agent-web-1',
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'agent-web', uid: web.metadata.uid, controller: true }],
    },
    spec: { replicas: 3, selector: { matchLabels: LABELS }, template },
  });
  const owner = ownerOf(rs, 'ReplicaSet');
  const pods = ['a', 'b', 'c'].map((p) => {
    const pod: KubeObject = {
      metadata: {
        namespace: 'agents',
        name: `agent-web-1-${p}`,
        labels: LABELS,
        ownerReferences: [{ apiVersion: owner.apiVersion, kind: owner.kind, name: 'agent-web-1', uid: owner.uid, controller: true }],
      },
      spec: { serviceAccountName: 'agent-1', containers: [container('500m')] },
      status: { phase: 'Running' },
    };
    const name = fake.put('pods', pod).metadata.name;
    fake.setPodUsage('agents', name, { main: usage });
    return name;
  });
  return { uid: web.metadata.uid ?? '', pods };
}

/** The HPA of agent-web, with the desired replicas its controller last computed. */
function seedHpa(desiredReplicas: number): KubeObject {
  return fake.put('horizontalpodautoscalers', {
    metadata: { namespace: 'agents', name: 'agent-web' },
    spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'agent-web' }, minReplicas: 1, maxReplicas: 20 },
    status: { currentReplicas: 3, desiredReplicas },
  });
}

const scaleWeb = (uid: string, from: number, to: number) =>
  review('deployment-scale-agent-10', { oldReplicas: from, replicas: to, set: [['object.metadata.uid', uid]] });

async function loadErrors(g: AssembledGuard, source: string, reason: string): Promise<number> {
  const metric = await g.metrics.registry.getSingleMetric('replica_guard_load_source_errors_total')?.get();
  return metric?.values.find((v) => v.labels.source === source && v.labels.reason === reason)?.value ?? 0;
}

describe('need from metrics.k8s.io in cluster mode', () => {
  it("doubles the need by the HPA rule when the pods use twice the target utilisation", async () => {
    // Each pod uses all of its 500m request: 100% against a 50% target, ratio 2: 3 → 6.
    const { uid } = seedAgentWeb('500m');
    const selectors: (string | null)[] = [];
    fake.intercept((req) => {
      if (req.path.startsWith('/apis/metrics.k8s.io/')) selectors.push(req.query.get('labelSelector'));
      return undefined;
    });
    const g = await start(METRICS_POLICY);
    expect((await validate(g, scaleWeb(uid, 3, 6))).allowed).toBe(true);
    const over = await validate(g, scaleWeb(uid, 3, 7));
    expect(over.allowed).toBe(false);
    expect(over.status?.message).toMatch(/need 6\b/);
    // One list for both requests (cached), narrowed to the workload's pods by its selector.
    expect(fake.requests.filter((r) => r === 'GET /apis/metrics.k8s.io/v1beta1/namespaces/agents/pods')).toHaveLength(1);
    expect(selectors).toEqual(['app=agent-web']);
  });

  it('falls back to onUnavailable when metrics-server does not answer', async () => {
    const { uid } = seedAgentWeb('500m');
    // What the aggregation layer answers when the APIService's backend is down.
    fake.intercept((req) => (req.path.startsWith('/apis/metrics.k8s.io/') ? { status: 503, reason: 'ServiceUnavailable' } : undefined));
    const g = await start(METRICS_POLICY);
    const denied = await validate(g, scaleWeb(uid, 3, 4));
    expect(denied.allowed).toBe(false);
    expect(denied.status?.message).toMatch(/cannot judge this growth \(metrics\.k8s\.io at .* answered HTTP 503 \(the metrics API is registered but its server does not answer\)/);
    expect(await loadErrors(g, 'metrics-api', 'http')).toBe(1);
  });

  it('gives a new workload need.min, as it has no pods to measure yet', async () => {
    seedAgentWeb('500m');
    const g = await start(policy('cpu', { mode: 'enforce', need: { metricsApi: { targetCpuUtilization: 50 }, min: 2, onUnavailable: 'deny' } }));
    // A CREATE of a workload the view does not have: need.min 2 allows 2, not 3.
    const create = (replicas: number) =>
      review('deployment-create-agent', { replicas, set: [['object.metadata.name', `fresh-${replicas}`]] });
    expect((await validate(g, create(2))).allowed).toBe(true);
    const denied = await validate(g, create(3));
    expect(denied.allowed).toBe(false);
    expect(denied.status?.message).toMatch(/need 2\b/);
  });
});

describe('need from the HPA in cluster mode', () => {
  it("takes the desired replicas of an HPA the agent may not write (the SubjectAccessReviews say no)", async () => {
    const { uid } = seedAgentWeb('500m');
    seedHpa(5);
    // Only the platform team may write HPAs.
    fake.setAccessRules([{ groups: ['platform'], verbs: ['*'], apiGroups: ['autoscaling'], resources: ['*'] }]);
    const g = await start(HPA_POLICY);
    expect((await validate(g, scaleWeb(uid, 3, 5))).allowed).toBe(true);
    const over = await validate(g, scaleWeb(uid, 3, 6));
    expect(over.allowed).toBe(false);
    expect(over.status?.message).toMatch(/need 5\b/);
    // Asked as the agent, with the groups of its request, about this HPA and its status;
    // asked once per question, then cached.
    const asked = fake.accessReviews.map((r) => `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ''} ${r.namespace}/${r.name}`);
    expect(asked.sort()).toEqual([
      'patch horizontalpodautoscalers agents/agent-web',
      'patch horizontalpodautoscalers/status agents/agent-web',
      'update horizontalpodautoscalers agents/agent-web',
      'update horizontalpodautoscalers/status agents/agent-web',
    ]);
    expect(fake.accessReviews[0]).toMatchObject({ user: AGENT, groups: ['system:serviceaccounts', 'system:serviceaccounts:agents', 'system:authenticated'] });
  });

  it('does not trust an HPA the agent may patch: onUnavailable decides', async () => {
    const { uid } = seedAgentWeb('500m');
    seedHpa(12);
    fake.setAccessRules([
      { groups: ['system:serviceaccounts:agents'], verbs: ['get', 'patch'], apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], namespaces: ['agents'] },
    ]);
    const g = await start(HPA_POLICY);
    const denied = await validate(g, scaleWeb(uid, 3, 4));
    expect(denied.allowed).toBe(false);
    expect(denied.status?.message).toMatch(/the agent's family can write HorizontalPodAutoscaler agents\/agent-web; its desired replicas follow the minReplicas the agent sets/);
    // A failed or slow review would read "it is not known whether…": this one must be a yes.
    expect(denied.status?.message).not.toMatch(/not known/);
    expect(await loadErrors(g, 'hpa', 'untrusted')).toBe(1);
  });

  it('does not trust an HPA in the agent’s provenance, even when RBAC no longer lets it write', async () => {
    const { uid } = seedAgentWeb('500m');
    const hpa = seedHpa(12);
    // The agent created the HPA through the guard earlier: its UID is in the agent's
    // provenance in the shared ledger, written as the review handler writes it.
    const ledger = new KubeLedger({ connection: { baseUrl: fake.url }, namespace: 'replica-guard', clock: systemClock });
    await ledger.transact(AGENT, (state) => ({ result: undefined, next: addProvenance(state, hpa.metadata.uid ?? '', new Date(), ledger.limits) }));
    const g = await start(HPA_POLICY);
    const denied = await validate(g, scaleWeb(uid, 3, 4));
    expect(denied.allowed).toBe(false);
    expect(denied.status?.message).toMatch(/the agent's family can write HorizontalPodAutoscaler agents\/agent-web/);
    expect(denied.status?.message).not.toMatch(/not known/);
  });

  it('does not trust an HPA when the SubjectAccessReviews fail', async () => {
    const { uid } = seedAgentWeb('500m');
    seedHpa(5);
    fake.intercept((req) => (req.path.endsWith('/subjectaccessreviews') ? { status: 500, reason: 'InternalError' } : undefined));
    const g = await start(HPA_POLICY);
    const denied = await validate(g, scaleWeb(uid, 3, 4));
    expect(denied.allowed).toBe(false);
    expect(denied.status?.message).toMatch(/it is not known whether the agent's family can write HorizontalPodAutoscaler agents\/agent-web/);
  });
});

describe('the embedded default (no cluster)', () => {
  it('has no metrics API and no HPAs: such policies fall back to onUnavailable', async () => {
    const g = await start(METRICS_POLICY, false);
    const denied = await validate(g, review('deployment-scale-agent-10', { oldReplicas: 3, replicas: 4 }));
    expect(denied.allowed).toBe(false);
    expect(denied.status?.message).toMatch(/takes its need from metrics-api, which this guard is not configured to reach/);
  });
});
