import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGet } from '../helpers/process.ts';
import type { LogLine } from '../helpers/telemetry.ts';
import { type ChartPlane, FULLNAME, helmRelease, helmUninstall, metricValue, RELEASE_NAMESPACE, startChartGuard, startChartPlane, urlModeValues } from './chart-release.ts';
import { type ClusterGuard, waitForWebhooks } from './cluster-guard.ts';
import { ADMIN, type ControlPlane, freePort, type Identity, serviceAccountIdentity } from './control-plane.ts';
import { create, deployment, failedWrites, refusal, startScaleStream, stored } from './workloads.ts';

// `helm install` of the chart into a real API server in url mode, and the guard run
// outside the cluster as the chart's own ServiceAccount (a TokenRequest token), with the
// configuration the chart rendered: the chart's RBAC is what the guard needs, no more.

const agent = serviceAccountIdentity('agents', 'agent-1');
const prober = serviceAccountIdentity('agents', 'prober');
const ADMISSION = '/apis/admissionregistration.k8s.io/v1';
const CONFIGURATIONS = ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'] as const;

let plane: ControlPlane;
let dir: string;
let port: number;
let installArgs: string[];
let guard: ClusterGuard | undefined;

interface Configuration {
  metadata: { name: string; labels?: Record<string, string> };
  webhooks: { name: string; timeoutSeconds: number; clientConfig: { url?: string; caBundle?: string }; matchConditions: { name: string; expression: string }[] }[];
}
const configuration = (resource: (typeof CONFIGURATIONS)[number]) => plane.must<Configuration>(ADMIN, `${ADMISSION}/${resource}/${FULLNAME}`);

const forbiddenLines = (lines: readonly LogLine[]) => lines.filter((l) => /\b403\b|forbidden/i.test(JSON.stringify(l)));

let chart: ChartPlane;

beforeAll(async () => {
  chart = await startChartPlane([agent, prober]);
  ({ plane, dir } = chart);
  port = await freePort();
  installArgs = await urlModeValues(dir, port);
});

afterAll(async () => {
  await guard?.stop();
  await chart?.stop();
});

describe('helm install in url mode, and the guard as the chart\'s ServiceAccount', () => {
  it('installs', async () => {
    const run = await helmRelease(plane, 'install', installArgs);
    expect(run.code, run.stderr).toBe(0);
    for (const resource of CONFIGURATIONS) {
      const served = await configuration(resource);
      expect(served.webhooks.map((w) => w.clientConfig.url)).toEqual([expect.stringMatching(new RegExp(`^https://127\\.0\\.0\\.1:${port}/(mutate|validate)$`))]);
      // Nothing in the chart sets it in this mode: the guard does.
      expect(served.webhooks[0]?.clientConfig.caBundle).toBeUndefined();
    }
  });

  it('has RBAC enough: ready, decides an agent write, writes the ledger, creates the Secret, patches both caBundles, nothing forbidden', async () => {
    const token = await plane.serviceAccountToken(RELEASE_NAMESPACE, FULLNAME);
    guard = await startChartGuard(plane, token, { webhookPort: port });
    const readyz = await httpGet(`${guard.process.opsUrl}/readyz`);
    expect(readyz.status, readyz.body).toBe(200);

    const secret = await plane.must<{ data: Record<string, string> }>(ADMIN, `/api/v1/namespaces/${RELEASE_NAMESPACE}/secrets/${FULLNAME}-certs`);
    const bundle = secret.data['ca-bundle.crt'];
    expect(bundle).toBeDefined();
    for (const resource of CONFIGURATIONS) {
      await expect.poll(async () => (await configuration(resource)).webhooks[0]?.clientConfig.caBundle, { timeout: 15_000 }).toBe(bundle);
    }
    expect(Buffer.from(bundle ?? '', 'base64').toString('utf8')).toBe(guard.caPem);

    await waitForWebhooks(plane, prober, 'agents', [guard]);
    const allowed = await create(plane, agent, 'deployments', deployment('agents', 'within', 2, 'agent-1'));
    expect(allowed.status, refusal(allowed)).toBe(201);
    const denied = await create(plane, agent, 'deployments', deployment('agents', 'beyond', 9, 'agent-1'));
    expect(denied.status).toBe(403);
    expect(refusal(denied)).toMatch(/admission webhook "(mutate|validate)\.replica-guard\.io" denied the request/);
    expect(await stored(plane, 'deployments', 'agents', 'beyond')).toBeUndefined();
    await expect
      .poll(async () =>
        (await plane.must<{ items: { metadata: { name: string } }[] }>(ADMIN, `/api/v1/namespaces/${RELEASE_NAMESPACE}/configmaps`)).items
          .map((c) => c.metadata.name)
          .filter((n) => n.startsWith('replica-guard-ledger-') && n.includes('agent-1')),
      )
      .toHaveLength(1);

    for (const configuration of ['mutating', 'validating']) {
      await expect.poll(() => metricValue(guard as ClusterGuard, 'replica_guard_webhook_configuration_in_sync', { configuration })).toBe(1);
    }
    expect(forbiddenLines(guard.process.lines)).toEqual([]);
  });
});

describe('a reduced role', () => {
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  interface Role {
    metadata: { name: string };
    rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  }

  /** A ServiceAccount bound to the chart's ClusterRole and Role, one of them copied without the rule `drop` picks. */
  async function reducedAccount(name: string, drop: { readonly from: 'ClusterRole' | 'Role'; readonly rule: (r: Role['rules'][number]) => boolean }): Promise<Identity> {
    await plane.must(ADMIN, `/api/v1/namespaces/${RELEASE_NAMESPACE}/serviceaccounts`, { body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } } });
    const subjects = [{ kind: 'ServiceAccount', name, namespace: RELEASE_NAMESPACE }];
    const clusterRole = await plane.must<Role>(ADMIN, `${rbac}/clusterroles/${FULLNAME}`);
    const role = await plane.must<Role>(ADMIN, `${rbac}/namespaces/${RELEASE_NAMESPACE}/roles/${FULLNAME}`);
    const copy = (r: Role, reduce: boolean) => ({ metadata: { name }, rules: reduce ? r.rules.filter((rule) => !drop.rule(rule)) : r.rules });
    const reducedCluster = copy(clusterRole, drop.from === 'ClusterRole');
    const reducedRole = copy(role, drop.from === 'Role');
    expect(reducedCluster.rules.length + reducedRole.rules.length).toBe(clusterRole.rules.length + role.rules.length - 1);
    await plane.must(ADMIN, `${rbac}/clusterroles`, { body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', ...reducedCluster } });
    await plane.must(ADMIN, `${rbac}/clusterrolebindings`, {
      body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name }, subjects },
    });
    await plane.must(ADMIN, `${rbac}/namespaces/${RELEASE_NAMESPACE}/roles`, { body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', ...reducedRole } });
    await plane.must(ADMIN, `${rbac}/namespaces/${RELEASE_NAMESPACE}/rolebindings`, {
      body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects },
    });
    return plane.serviceAccountToken(RELEASE_NAMESPACE, name);
  }

  async function saysMissing(identity: Identity, message: RegExp): Promise<string> {
    const reduced = await startChartGuard(plane, identity, { webhookPort: 0, waitReady: false });
    try {
      await expect
        .poll(() => reduced.process.lines.map((l) => JSON.stringify(l)).find((l) => message.test(l)), { timeout: 20_000, interval: 200 })
        .toBeDefined();
      return (await httpGet(`${reduced.process.opsUrl}/readyz`)).body;
    } finally {
      await reduced.stop();
    }
  }

  it('without list/watch on jobs: the guard names the resource and verb, and stays not ready', async () => {
    const identity = await reducedAccount('rg-no-batch', { from: 'ClusterRole', rule: (r) => r.apiGroups.includes('batch') });
    const readyz = await saysMissing(identity, /cannot (list|watch) resource \\"jobs\\" in API group \\"batch\\"/);
    expect(readyz).toMatch(/jobs|not synced|view/i);
  });

  it('without the ledger ConfigMaps: the guard names get on configmaps', async () => {
    const identity = await reducedAccount('rg-no-configmaps', { from: 'Role', rule: (r) => r.resources.includes('configmaps') });
    await saysMissing(identity, /needs \\"get\\" on configmaps \\"rg-replica-guard-webhooks\\"|cannot get resource \\"configmaps\\"/);
  });
});

/** The running guard of the release (started by the RBAC test). */
function running(): ClusterGuard {
  if (guard === undefined) throw new Error('the guard of the release is not running');
  return guard;
}

const jsonPatch = (resource: (typeof CONFIGURATIONS)[number], body: unknown) =>
  plane.must(ADMIN, `${ADMISSION}/${resource}/${FULLNAME}`, { method: 'PATCH', body, contentType: 'application/json-patch+json' });
const timeouts = async (resource: (typeof CONFIGURATIONS)[number]) => (await configuration(resource)).webhooks.map((w) => w.timeoutSeconds);

describe('the guard keeps the configurations helm installed', () => {
  it('restores a configuration edited behind its back', async () => {
    const before = await metricValue(running(), 'replica_guard_webhook_configuration_restores_total', { configuration: 'validating' });
    await jsonPatch('validatingwebhookconfigurations', [
      { op: 'replace', path: '/webhooks/0/timeoutSeconds', value: 3 },
      { op: 'replace', path: '/webhooks/0/matchConditions', value: [{ name: 'nobody', expression: 'false' }] },
    ]);
    await expect.poll(() => timeouts('validatingwebhookconfigurations'), { timeout: 15_000 }).toEqual([10]);
    expect((await configuration('validatingwebhookconfigurations')).webhooks[0]?.matchConditions.map((c) => c.name)).toContain('agents');
    // Counted and logged once the guard's write has returned, which may be just after the API server shows it.
    const restores = () => metricValue(running(), 'replica_guard_webhook_configuration_restores_total', { configuration: 'validating' });
    await expect.poll(restores, { timeout: 5000 }).toBe(before + 1);
    // The guard's log lines reach stdout within 100 ms (buffered).
    await expect.poll(() => running().process.lines.some((l) => String(l.msg).includes('changed behind the guard'))).toBe(true);
  });

  it('leaves a configuration labelled replica-guard.io/unmanaged=true alone, and says so; restores it once the label goes', async () => {
    await jsonPatch('mutatingwebhookconfigurations', [
      { op: 'add', path: '/metadata/labels/replica-guard.io~1unmanaged', value: 'true' },
      { op: 'replace', path: '/webhooks/0/timeoutSeconds', value: 4 },
    ]);
    await expect.poll(() => metricValue(running(), 'replica_guard_webhook_configuration_unmanaged', { configuration: 'mutating' }), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => running().process.lines.some((l) => String(l.msg).includes('labelled unmanaged'))).toBe(true);
    // A round that saw the label has run (the metric); another one, by the watch, on a second edit.
    await jsonPatch('mutatingwebhookconfigurations', [{ op: 'replace', path: '/webhooks/0/failurePolicy', value: 'Ignore' }]);
    await new Promise((r) => setTimeout(r, 1500));
    const edited = (await configuration('mutatingwebhookconfigurations')).webhooks[0] as unknown as { timeoutSeconds: number; failurePolicy: string };
    expect([edited.timeoutSeconds, edited.failurePolicy]).toEqual([4, 'Ignore']);

    await jsonPatch('mutatingwebhookconfigurations', [{ op: 'remove', path: '/metadata/labels/replica-guard.io~1unmanaged' }]);
    await expect.poll(() => timeouts('mutatingwebhookconfigurations'), { timeout: 15_000 }).toEqual([10]);
    await expect.poll(() => metricValue(running(), 'replica_guard_webhook_configuration_unmanaged', { configuration: 'mutating' }), { timeout: 5000 }).toBe(0);
  });
});
describe('helm upgrade', () => {
  it('with changed values updates both configurations, and the guard agrees: in sync, nothing put back, caBundle kept', async () => {
    const g = running();
    const restores = () => Promise.all(['mutating', 'validating'].map((c) => metricValue(g, 'replica_guard_webhook_configuration_restores_total', { configuration: c })));
    const before = await restores();
    const bundle = (await configuration('validatingwebhookconfigurations')).webhooks[0]?.clientConfig.caBundle;
    // Both configurations' timeoutSeconds were last written by the guard (the restores above).
    const run = await helmRelease(plane, 'upgrade', [...installArgs, '--set', 'webhook.timeoutSeconds=5', '--set', 'agents.namespaces={agents,bots}']);
    expect(run.code, run.stderr).toBe(0);
    for (const resource of CONFIGURATIONS) {
      const served = await configuration(resource);
      expect(served.webhooks.map((w) => w.timeoutSeconds), resource).toEqual([5]);
      expect(served.webhooks[0]?.matchConditions.find((c) => c.name === 'agents')?.expression).toContain("system:serviceaccount:bots:");
      expect(served.webhooks[0]?.clientConfig.caBundle, resource).toBe(bundle);
    }
    // Longer than the reconcile interval (10 s): every round since found them as declared.
    await new Promise((r) => setTimeout(r, 11_000));
    for (const resource of CONFIGURATIONS) expect(await timeouts(resource)).toEqual([5]);
    expect(await restores()).toEqual(before);
    for (const configuration of ['mutating', 'validating']) {
      expect(await metricValue(g, 'replica_guard_webhook_configuration_in_sync', { configuration })).toBe(1);
    }
    expect(forbiddenLines(g.process.lines)).toEqual([]);
  }, 90_000);
});

describe('SIGTERM under a stream of agent writes through the API server', () => {
  it('loses none: during the drain every write is decided (allowed or a clean denial), never a failed webhook call; then exit 0', async () => {
    const g = running();
    const stream = startScaleStream(plane, agent, 'agents', 'within');
    await new Promise((r) => setTimeout(r, 1000));
    const atSignal = stream.answers.length;
    const exited = new Promise<number | null>((resolve) => g.process.child.once('exit', (code) => resolve(code)));
    g.process.child.kill('SIGTERM');
    await expect.poll(async () => (await httpGet(`${g.process.opsUrl}/readyz`)).status, { timeout: 2000, interval: 100 }).toBe(503);
    // The chart's drain period is 10 s: writes keep coming for most of it.
    await new Promise((r) => setTimeout(r, 7000));
    const answers = await stream.stop();
    expect(answers.length - atSignal).toBeGreaterThan(20);
    expect(failedWrites(answers)).toEqual([]);
    expect(await exited).toBe(0);
    await g.stop();
    guard = undefined;
  }, 60_000);
});

describe('two guards starting at the same moment', () => {
  let second: ClusterGuard | undefined;
  afterAll(async () => {
    await second?.stop();
  });

  it('end with the same certificate, the one in the Secret, which both caBundles trust; the API server calls the guard', async () => {
    const secretPath = `/api/v1/namespaces/${RELEASE_NAMESPACE}/secrets/${FULLNAME}-certs`;
    await plane.must(ADMIN, secretPath, { method: 'DELETE' });
    const token = await plane.serviceAccountToken(RELEASE_NAMESPACE, FULLNAME);
    const [a, b] = await Promise.all([startChartGuard(plane, token, { webhookPort: port }), startChartGuard(plane, token, { webhookPort: 0 })]);
    guard = a;
    second = b;
    const served = await Promise.all([a, b].map((g) => readFile(join(g.dir, 'certs', 'tls.crt'), 'utf8')));
    const secret = await plane.must<{ data: Record<string, string> }>(ADMIN, secretPath);
    const decode = (key: string) => Buffer.from(secret.data[key] ?? '', 'base64').toString('utf8');
    expect(served).toEqual([decode('tls.crt'), decode('tls.crt')]);
    expect([a.caPem, b.caPem]).toEqual([decode('ca-bundle.crt'), decode('ca-bundle.crt')]);
    const created = [a, b].flatMap((g) => g.process.lines.filter((l) => l.msg === 'created the self-managed CA and serving certificate'));
    expect(created).toHaveLength(1);
    for (const resource of CONFIGURATIONS) {
      await expect.poll(async () => (await configuration(resource)).webhooks[0]?.clientConfig.caBundle, { timeout: 15_000 }).toBe(secret.data['ca-bundle.crt']);
    }
    await waitForWebhooks(plane, prober, 'agents', [a]);
    const denied = await create(plane, agent, 'deployments', deployment('agents', 'beyond-again', 9, 'agent-1'));
    expect(denied.status, refusal(denied)).toBe(403);
  }, 90_000);
});

describe('helm uninstall', () => {
  it('removes what the chart README says it removes, and leaves the Secret and the ledger', async () => {
    await guard?.stop();
    guard = undefined;
    const run = await helmUninstall(plane);
    expect(run.code, run.stderr).toBe(0);
    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    const ns = `/api/v1/namespaces/${RELEASE_NAMESPACE}`;
    const gone = [
      ...CONFIGURATIONS.map((r) => `${ADMISSION}/${r}/${FULLNAME}`),
      `${rbac}/clusterroles/${FULLNAME}`,
      `${rbac}/clusterrolebindings/${FULLNAME}`,
      `${rbac}/namespaces/${RELEASE_NAMESPACE}/roles/${FULLNAME}`,
      `${rbac}/namespaces/${RELEASE_NAMESPACE}/rolebindings/${FULLNAME}`,
      `${ns}/serviceaccounts/${FULLNAME}`,
      `${ns}/configmaps/${FULLNAME}-config`,
      `${ns}/configmaps/${FULLNAME}-webhooks`,
      `${ns}/configmaps/${FULLNAME}-policies`,
    ];
    for (const path of gone) expect((await plane.api(ADMIN, path)).status, path).toBe(404);
    expect((await plane.api(ADMIN, `${ns}/secrets/${FULLNAME}-certs`)).status).toBe(200);
    const maps = await plane.must<{ items: { metadata: { name: string } }[] }>(ADMIN, `${ns}/configmaps`);
    expect(maps.items.map((m) => m.metadata.name).filter((n) => n.startsWith('replica-guard-ledger-'))).toHaveLength(1);
    // No webhook left: the API server stores what the guard refused before.
    const unguarded = await create(plane, agent, 'deployments', deployment('agents', 'beyond', 9, 'agent-1'));
    expect(unguarded.status, refusal(unguarded)).toBe(201);
  });
});
