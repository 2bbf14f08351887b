import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { generateCertificateAuthority } from '../../src/tls/certificates.ts';
import { policies, policy } from '../helpers/guard.ts';
import { parseExposition } from '../helpers/telemetry.ts';
import { httpGet } from '../helpers/process.ts';
import { type ClusterGuard, startGuardedPlane, GUARD_NAMESPACE, registerWebhooks, reviewsAnswered, startClusterGuard, waitForWebhooks } from './cluster-guard.ts';
import { ADMIN, ControlPlane, type Identity, serviceAccountIdentity } from './control-plane.ts';
import {
  AGENT_IMAGE,
  create,
  cronJob,
  daemonSet,
  deployment,
  job,
  pathOf,
  pod,
  refusal,
  replicated,
  stored,
  storedReplicas,
} from './workloads.ts';

// The guard as users run it (its own process, --kubeconfig) behind a real kube-apiserver:
// the API server decides what to send, applies its defaults, calls the webhooks over TLS
// checking the guard's chain against caBundle, and stores what they allow. Every test
// reads back what the API server stored.

const agent = (name: string): Identity => serviceAccountIdentity('agents', name);
const AGENTS = {
  scaler: agent('scaler'),
  patcher: agent('patcher'),
  creator: agent('creator'),
  cloner: agent('cloner'),
  batcher: agent('batcher'),
  daemon: agent('daemon'),
  podder: agent('podder'),
  autoscaler: agent('autoscaler'),
  surger: agent('surger'),
  dryrunner: agent('dryrunner'),
  prober: agent('prober'),
  clamped: serviceAccountIdentity('builds', 'builder'),
};

// need 3 + headroom 1: at most 4 per workload; 8 potential instances per family.
const POLICIES = policies(
  policy('tier-enforce', {
    mode: 'enforce',
    agents: { serviceAccounts: ['agents:*'] },
    need: { static: 3, onUnavailable: 'deny' },
    limits: { headroom: 1, perFamily: 8 },
  }),
  policy('tier-clamp', {
    mode: 'clamp',
    agents: { serviceAccounts: ['builds:*'] },
    need: { static: 3, onUnavailable: 'deny' },
    limits: { headroom: 1, perFamily: 8 },
  }),
);

let plane: ControlPlane;
let guard: ClusterGuard;

beforeAll(async () => {
  plane = await startGuardedPlane(Object.values(AGENTS), ['agents', 'builds'], ['sandbox', 'tls-check']);
  for (let i = 1; i <= 6; i++) {
    await plane.must(ADMIN, '/api/v1/nodes', {
      body: { apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${i}`, labels: { pool: i <= 2 ? 'agents' : 'general' } } },
    });
  }
  guard = await startClusterGuard(plane, POLICIES);
  // One more registration of the same guard, for the tls-check namespace alone, whose
  // caBundle holds a CA that did not sign the guard's certificate.
  const foreign = await generateCertificateAuthority({ commonName: 'not-the-guards-ca', now: new Date() });
  await registerWebhooks(plane, [
    { guard, condition: "request.namespace != 'tls-check'" },
    { guard, condition: "request.namespace == 'tls-check'", caPem: foreign.cert },
  ]);
  await waitForWebhooks(plane, AGENTS.dryrunner, 'agents', [guard]);
});

afterAll(async () => {
  await guard?.stop();
  await plane?.stop();
});

/**
 * Waits until the guard's view holds a workload an admin just wrote: the view is a watch,
 * and a Scale whose parent it has not seen yet is an unknown fact (onUnavailable: deny).
 * Probes with a dry-run scale by one, within any allowance here, by an agent of its own.
 */
async function seen(resource: 'deployments' | 'replicasets' | 'statefulsets' | 'replicationcontrollers', namespace: string, name: string): Promise<void> {
  const current = (await storedReplicas(plane, resource, namespace, name)) ?? 0;
  await expect
    .poll(
      async () =>
        (
          await plane.api(AGENTS.prober, `${pathOf(resource, namespace, name)}/scale?dryRun=All`, {
            method: 'PATCH',
            body: { spec: { replicas: current + 1 } },
            contentType: 'application/merge-patch+json',
          })
        ).status,
      { timeout: 15_000, interval: 200 },
    )
    .toBe(200);
}

describe('a real kube-apiserver calls the guard', () => {
  it('kubectl scale on each scalable kind: within the allowance stored, beyond it denied and left as it was', async () => {
    for (const resource of ['deployments', 'replicasets', 'statefulsets', 'replicationcontrollers'] as const) {
      const name = `scale-${resource}`;
      await plane.must(ADMIN, pathOf(resource, 'agents', ''), { body: replicated(resource, 'agents', name, 1, 'scaler') });
      await seen(resource, 'agents', name);
      const up = await plane.kubectl(AGENTS.scaler, ['scale', '-n', 'agents', `${resource}/${name}`, '--replicas=2']);
      expect(up.code, up.stderr).toBe(0);
      expect(await storedReplicas(plane, resource, 'agents', name)).toBe(2);

      const over = await plane.kubectl(AGENTS.scaler, ['scale', '-n', 'agents', `${resource}/${name}`, '--replicas=9']);
      expect(over.code).not.toBe(0);
      expect(over.stderr).toMatch(/admission webhook "(mutate|validate)-0\.replica-guard\.io" denied the request/);
      expect(over.stderr).toMatch(/from 2 to 9/);
      expect(await storedReplicas(plane, resource, 'agents', name)).toBe(2);

      // Back to 0 so that the next kind has the family's room (8 potential instances).
      const down = await plane.kubectl(AGENTS.scaler, ['scale', '-n', 'agents', `${resource}/${name}`, '--replicas=0']);
      expect(down.code, down.stderr).toBe(0);
      expect(await storedReplicas(plane, resource, 'agents', name)).toBe(0);
    }
  });

  it('every patch type and server-side apply of spec.replicas', async () => {
    const path = pathOf('deployments', 'agents', 'patched');
    await plane.must(ADMIN, pathOf('deployments', 'agents'), { body: deployment('agents', 'patched', 1, 'patcher') });
    await seen('deployments', 'agents', 'patched');
    const patch = (contentType: string, body: unknown, query = '') =>
      plane.api(AGENTS.patcher, `${path}${query}`, { method: 'PATCH', body, contentType });

    const json = await patch('application/json-patch+json', [{ op: 'replace', path: '/spec/replicas', value: 2 }]);
    expect(json.status, refusal(json)).toBe(200);
    expect(await storedReplicas(plane, 'deployments', 'agents', 'patched')).toBe(2);
    const merge = await patch('application/merge-patch+json', { spec: { replicas: 3 } });
    expect(merge.status, refusal(merge)).toBe(200);
    const strategic = await patch('application/strategic-merge-patch+json', { spec: { replicas: 4 } });
    expect(strategic.status, refusal(strategic)).toBe(200);
    expect(await storedReplicas(plane, 'deployments', 'agents', 'patched')).toBe(4);

    for (const [type, body] of [
      ['application/json-patch+json', [{ op: 'replace', path: '/spec/replicas', value: 7 }]],
      ['application/merge-patch+json', { spec: { replicas: 7 } }],
      ['application/strategic-merge-patch+json', { spec: { replicas: 7 } }],
    ] as const) {
      const denied = await patch(type, body);
      expect(denied.status, type).toBe(403);
      expect(refusal(denied)).toMatch(/denied scaling Deployment agents\/patched from 4 to 7/);
    }
    const applied = YAML.stringify({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'patched', namespace: 'agents' }, spec: { replicas: 7 } });
    const apply = await patch('application/apply-patch+yaml', applied, '?fieldManager=agent&force=true');
    expect(apply.status).toBe(403);
    expect(await storedReplicas(plane, 'deployments', 'agents', 'patched')).toBe(4);

    // The same apply at the stored count is a no-op for the guard and succeeds.
    const noop = await patch('application/apply-patch+yaml', applied.replace('replicas: 7', 'replicas: 4'), '?fieldManager=agent&force=true');
    expect(noop.status, refusal(noop)).toBe(200);
    expect(await storedReplicas(plane, 'deployments', 'agents', 'patched')).toBe(4);
  });

  it('create with generateName: allowed within the allowance, nothing stored when denied', async () => {
    const named = (replicas: number) => {
      const d = deployment('agents', 'unused', replicas, 'creator');
      return { ...d, metadata: { generateName: 'gen-', namespace: 'agents', labels: { made: 'generate-name' } } };
    };
    const ok = await plane.api<{ metadata: { name: string } }>(AGENTS.creator, pathOf('deployments', 'agents'), { body: named(2) });
    expect(ok.status, refusal(ok)).toBe(201);
    expect(ok.body.metadata.name).toMatch(/^gen-/);
    expect(await storedReplicas(plane, 'deployments', 'agents', ok.body.metadata.name)).toBe(2);

    const over = await plane.api(AGENTS.creator, pathOf('deployments', 'agents'), { body: named(9) });
    expect(over.status).toBe(403);
    expect(refusal(over)).toMatch(/denied creating Deployment agents\/gen-\S* with 9 instances/);
    const listed = await plane.must<{ items: unknown[] }>(ADMIN, `${pathOf('deployments', 'agents')}?labelSelector=made%3Dgenerate-name`);
    expect(listed.items).toHaveLength(1);
  });

  it('denies a clone in another namespace and as another kind, whatever its size', async () => {
    const own = await create(plane, AGENTS.cloner, 'deployments', deployment('agents', 'cloner-web', 3, 'cloner'));
    expect(own.status, refusal(own)).toBe(201);
    await seen('deployments', 'agents', 'cloner-web');

    const elsewhere = await create(plane, AGENTS.cloner, 'deployments', deployment('sandbox', 'cloner-copy', 1, 'cloner'));
    expect(elsewhere.status).toBe(403);
    expect(refusal(elsewhere)).toMatch(/clones Deployment agents\/cloner-web/);
    expect(refusal(elsewhere)).toMatch(/clones\.allowed: true/);
    expect(await stored(plane, 'deployments', 'sandbox', 'cloner-copy')).toBeUndefined();

    for (let i = 1; i <= 3; i++) {
      const bare = await create(plane, AGENTS.cloner, 'pods', pod('agents', `cloner-pod-${i}`, 'cloner'));
      expect(bare.status, `pod ${i}`).toBe(403);
      expect(refusal(bare)).toMatch(/clones Deployment agents\/cloner-web/);
    }
    const run = await plane.kubectl(AGENTS.cloner, [
      'run',
      'cloner-run',
      '-n',
      'agents',
      `--image=${AGENT_IMAGE}`,
      '--restart=Never',
      '--overrides={"apiVersion":"v1","spec":{"serviceAccountName":"cloner"}}',
    ]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/clones Deployment agents\/cloner-web/);
    const asStatefulSet = await create(plane, AGENTS.cloner, 'statefulsets', replicated('statefulsets', 'sandbox', 'cloner-sts', 1, 'cloner'));
    expect(asStatefulSet.status).toBe(403);
    for (const [resource, ns, name] of [
      ['pods', 'agents', 'cloner-pod-1'],
      ['pods', 'agents', 'cloner-run'],
      ['statefulsets', 'sandbox', 'cloner-sts'],
    ] as const) {
      expect(await stored(plane, resource, ns, name), name).toBeUndefined();
    }

    // Another image is no clone: one pod fits the need of 3 + headroom 1 beside nothing else.
    const other = await create(plane, AGENTS.cloner, 'pods', pod('agents', 'cloner-other', 'cloner', 'registry.example/tool:2.0'));
    expect(other.status, refusal(other)).toBe(201);
  });

  it('a Job, a CronJob, a DaemonSet and a bare Pod', async () => {
    const jobOk = await create(plane, AGENTS.batcher, 'jobs', job('agents', 'batch-ok', 2, 'batcher'));
    expect(jobOk.status, refusal(jobOk)).toBe(201);
    const jobOver = await create(plane, AGENTS.batcher, 'jobs', job('agents', 'batch-over', 6, 'batcher'));
    expect(jobOver.status).toBe(403);
    expect(await stored(plane, 'jobs', 'agents', 'batch-over')).toBeUndefined();
    // Another image, or the CronJob would be a clone of the Job.
    const cronOver = await create(plane, AGENTS.batcher, 'cronjobs', cronJob('agents', 'cron-over', 5, 'batcher', 'registry.example/cron:1'));
    expect(cronOver.status).toBe(403);
    expect(refusal(cronOver)).toMatch(/asked for 5/);
    const cronOk = await create(plane, AGENTS.batcher, 'cronjobs', cronJob('agents', 'cron-ok', 2, 'batcher', 'registry.example/cron:1'));
    expect(cronOk.status, refusal(cronOk)).toBe(201);
    expect((await stored(plane, 'jobs', 'agents', 'batch-ok'))?.spec.parallelism).toBe(2);

    // Six nodes: everywhere is 6 instances, more than 4; the two `pool=agents` nodes fit.
    const everywhere = await create(plane, AGENTS.daemon, 'daemonsets', daemonSet('agents', 'ds-all', 'daemon'));
    expect(everywhere.status).toBe(403);
    expect(refusal(everywhere)).toMatch(/nodeSelector|6 instances/);
    const narrow = await create(plane, AGENTS.daemon, 'daemonsets', daemonSet('agents', 'ds-pool', 'daemon', { pool: 'agents' }));
    expect(narrow.status, refusal(narrow)).toBe(201);
    const widen = await plane.api(AGENTS.daemon, pathOf('daemonsets', 'agents', 'ds-pool'), {
      method: 'PATCH',
      body: [{ op: 'remove', path: '/spec/template/spec/nodeSelector' }],
      contentType: 'application/json-patch+json',
    });
    expect(widen.status).toBe(403);
    expect((await stored(plane, 'daemonsets', 'agents', 'ds-pool'))?.spec.template?.spec?.nodeSelector).toEqual({ pool: 'agents' });

    const bare = await create(plane, AGENTS.podder, 'pods', pod('agents', 'bare-1', 'podder'));
    expect(bare.status, refusal(bare)).toBe(201);
    const elsewhereAccount = await create(plane, AGENTS.podder, 'pods', pod('agents', 'bare-other-sa', 'default'));
    expect(elsewhereAccount.status).toBe(403);
    expect(refusal(elsewhereAccount)).toMatch(/service account "default"/);
  });

  it('an HPA created within the allowance and refused when raised', async () => {
    await plane.must(ADMIN, pathOf('deployments', 'agents'), { body: deployment('agents', 'scaled', 2, 'autoscaler') });
    await seen('deployments', 'agents', 'scaled');
    const hpa = (max: number) => ({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'scaled', namespace: 'agents' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'scaled' }, minReplicas: 1, maxReplicas: max },
    });
    const created = await create(plane, AGENTS.autoscaler, 'horizontalpodautoscalers', hpa(4));
    expect(created.status, refusal(created)).toBe(201);
    const raised = await plane.api(AGENTS.autoscaler, pathOf('horizontalpodautoscalers', 'agents', 'scaled'), {
      method: 'PATCH',
      body: { spec: { maxReplicas: 20 } },
      contentType: 'application/merge-patch+json',
    });
    expect(raised.status).toBe(403);
    expect((await stored(plane, 'horizontalpodautoscalers', 'agents', 'scaled'))?.spec.maxReplicas).toBe(4);
  });

  it('a large maxSurge raises the potential instances and is refused', async () => {
    const created = await create(plane, AGENTS.surger, 'deployments', deployment('agents', 'surge', 2, 'surger'));
    expect(created.status, refusal(created)).toBe(201);
    await seen('deployments', 'agents', 'surge');
    const surge = await plane.api(AGENTS.surger, pathOf('deployments', 'agents', 'surge'), {
      method: 'PATCH',
      body: { spec: { strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 50, maxUnavailable: 0 } } } },
      contentType: 'application/strategic-merge-patch+json',
    });
    expect(surge.status).toBe(403);
    expect(refusal(surge)).toMatch(/perFamily/);
    // What the API server defaulted at creation stays: 25%.
    expect((await stored(plane, 'deployments', 'agents', 'surge'))?.spec.strategy?.rollingUpdate?.maxSurge).toBe('25%');
  });

  it('clamp mode: the mutating webhook lowers the count and the API server stores the clamped value', async () => {
    const manifest = join(guard.dir, 'clamped.yaml');
    await writeFile(manifest, YAML.stringify(deployment('builds', 'clamped', 9, 'builder')));
    const created = await plane.kubectl(AGENTS.clamped, ['apply', '-f', manifest]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toMatch(/Warning: .*replica-guard/i);
    expect(await storedReplicas(plane, 'deployments', 'builds', 'clamped')).toBe(4);
  });

  it('a dry-run request is decided and leaves no trace in the API server, the ledger or the counters', async () => {
    const ledgers = async () =>
      (await plane.must<{ items: { metadata: { name: string } }[] }>(ADMIN, `/api/v1/namespaces/${GUARD_NAMESPACE}/configmaps`)).items
        .map((c) => c.metadata.name)
        .filter((n) => n.includes('dryrunner'));
    const episodes = async () =>
      parseExposition((await httpGet(`${guard.process.opsUrl}/metrics`)).body)
        .filter((s) => s.name === 'replica_guard_episodes_total' && s.labels.agent === AGENTS.dryrunner.user && s.labels.basis === 'requested')
        .reduce((sum, s) => sum + s.value, 0);
    const before = await reviewsAnswered(guard, 'validate');
    const denied = await create(plane, AGENTS.dryrunner, 'deployments', { ...deployment('agents', 'dry', 9, 'dryrunner') });
    expect(denied.status).toBe(403);
    const deniedDry = await plane.api(AGENTS.dryrunner, `${pathOf('deployments', 'agents')}?dryRun=All`, { body: deployment('agents', 'dry-2', 9, 'dryrunner') });
    expect(deniedDry.status).toBe(403);
    const allowedDry = await plane.api(AGENTS.dryrunner, `${pathOf('deployments', 'agents')}?dryRun=All`, { body: deployment('agents', 'dry-3', 2, 'dryrunner') });
    expect(allowedDry.status, refusal(allowedDry)).toBe(201);
    expect(await reviewsAnswered(guard, 'validate')).toBe(before + 3);
    expect(await stored(plane, 'deployments', 'agents', 'dry-2')).toBeUndefined();
    expect(await stored(plane, 'deployments', 'agents', 'dry-3')).toBeUndefined();
    // The real (denied) request is one episode; the two dry runs add none.
    await expect.poll(episodes, { timeout: 5000 }).toBe(1);
    const afterReal = await ledgers();
    expect(afterReal).toHaveLength(1);
    const again = await plane.api(AGENTS.dryrunner, `${pathOf('deployments', 'agents')}?dryRun=All`, { body: deployment('agents', 'dry-4', 9, 'dryrunner') });
    expect(again.status).toBe(403);
    expect(await episodes()).toBe(1);
  });

  it("an admin's writes never reach the guard (matchConditions), however large", async () => {
    const before = await Promise.all([reviewsAnswered(guard, 'mutate'), reviewsAnswered(guard, 'validate')]);
    const big = await create(plane, ADMIN, 'deployments', deployment('agents', 'admin-big', 50, 'scaler'));
    expect(big.status, refusal(big)).toBe(201);
    const scaled = await plane.kubectl(ADMIN, ['scale', '-n', 'agents', 'deployment/admin-big', '--replicas=80']);
    expect(scaled.code, scaled.stderr).toBe(0);
    expect(await storedReplicas(plane, 'deployments', 'agents', 'admin-big')).toBe(80);
    expect(await Promise.all([reviewsAnswered(guard, 'mutate'), reviewsAnswered(guard, 'validate')])).toEqual(before);
    expect(guard.process.lines.some((l) => JSON.stringify(l).includes(ADMIN.user))).toBe(false);
  });

  it("verifies the guard's chain against caBundle: a foreign CA fails the call, and failurePolicy Fail refuses the write", async () => {
    const before = await reviewsAnswered(guard, 'validate');
    const answer = await create(plane, AGENTS.prober, 'deployments', deployment('tls-check', 'unverified', 1, 'prober'));
    expect(answer.status).toBe(500);
    expect(refusal(answer)).toMatch(/failed calling webhook "mutate-1\.replica-guard\.io".*(x509|certificate signed by unknown authority)/s);
    expect(await stored(plane, 'deployments', 'tls-check', 'unverified')).toBeUndefined();
    // The guard never saw a request: the handshake failed before it.
    expect(await reviewsAnswered(guard, 'validate')).toBe(before);
  });
});

describe('the test API server itself', () => {
  it('issues service-account tokens through TokenRequest, which it then authenticates', async () => {
    await plane.must(ADMIN, '/api/v1/namespaces/agents/serviceaccounts', {
      body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'minted', namespace: 'agents' } },
    });
    const request = await plane.must<{ status: { token: string } }>(ADMIN, '/api/v1/namespaces/agents/serviceaccounts/minted/token', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } },
    });
    const minted: Identity = { user: 'system:serviceaccount:agents:minted', groups: [], token: request.status.token };
    const review = await plane.must<{ status: { userInfo: { username: string; groups: string[] } } }>(
      minted,
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
    );
    expect(review.status.userInfo.username).toBe(minted.user);
    expect(review.status.userInfo.groups).toContain('system:serviceaccounts:agents');
  });
});
