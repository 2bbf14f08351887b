import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { webhookRules } from '../../src/admission/webhook-rules.ts';
import { type GuardProcess, httpGet, startGuardProcess } from '../helpers/process.ts';
import { parseExposition } from '../helpers/telemetry.ts';
import { ADMIN, ControlPlane, GUARD, type Identity } from './control-plane.ts';
import { grantAgentsWorkloadAccess } from './workloads.ts';

/** The guard's namespace in the tier, where its ledger ConfigMaps live. */
export const GUARD_NAMESPACE = 'replica-guard';

/**
 * What the guard may do on the test API server: what README ("Running against a
 * cluster") says its service account needs, and nothing more, so that a missing
 * permission shows up as a forbidden call in the tier.
 */
export async function grantGuardAccess(plane: ControlPlane): Promise<void> {
  await plane.ensureNamespace(GUARD_NAMESPACE);
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  const apply = async (path: string, body: { readonly metadata: { readonly name: string }; readonly [field: string]: unknown }) => {
    const answer = await plane.api(ADMIN, `${path}/${body.metadata.name}?fieldManager=test`, {
      method: 'PATCH',
      body,
      contentType: 'application/apply-patch+yaml',
    });
    if (answer.status !== 200 && answer.status !== 201) throw new Error(`${path}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
  };
  const subject = { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: GUARD.user };
  await apply(`${rbac}/clusterroles`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'replica-guard-test' },
    rules: [
      { apiGroups: [''], resources: ['pods', 'nodes', 'replicationcontrollers'], verbs: ['list', 'watch'] },
      { apiGroups: ['apps'], resources: ['deployments', 'replicasets', 'statefulsets', 'daemonsets'], verbs: ['list', 'watch'] },
      { apiGroups: ['batch'], resources: ['jobs', 'cronjobs'], verbs: ['list', 'watch'] },
      { apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], verbs: ['list', 'watch'] },
      { apiGroups: ['metrics.k8s.io'], resources: ['pods'], verbs: ['get', 'list'] },
      { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
      // The safety switches (README "Safety switches"): decision Events, and the permission check's agent list.
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
      { apiGroups: [''], resources: ['serviceaccounts', 'namespaces'], verbs: ['list', 'watch'] },
    ],
  });
  await apply(`${rbac}/clusterrolebindings`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'replica-guard-test' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'replica-guard-test' },
    subjects: [subject],
  });
  await apply(`${rbac}/namespaces/${GUARD_NAMESPACE}/roles`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'replica-guard-ledger' },
    rules: [
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'update'] },
      // Each replica's acknowledgement of the switches it applies.
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update'] },
    ],
  });
  await apply(`${rbac}/namespaces/${GUARD_NAMESPACE}/rolebindings`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'replica-guard-ledger' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'replica-guard-ledger' },
    subjects: [subject],
  });
}

/**
 * A control plane set up for the guard: the agents' namespaces (whose service accounts may
 * write workloads anywhere, as RBAC would let an over-trusted agent) and any others, and
 * the guard's own access.
 */
export async function startGuardedPlane(
  identities: readonly Identity[],
  agentNamespaces: readonly string[],
  otherNamespaces: readonly string[] = [],
): Promise<ControlPlane> {
  const plane = await ControlPlane.start(identities);
  try {
    for (const ns of [...agentNamespaces, ...otherNamespaces]) await plane.ensureNamespace(ns);
    await grantGuardAccess(plane);
    await grantAgentsWorkloadAccess(plane, agentNamespaces);
  } catch (error) {
    await plane.stop();
    throw error;
  }
  return plane;
}

/** A guard process against the test API server, with its files. */
export interface ClusterGuard {
  readonly process: GuardProcess;
  readonly caPem: string;
  readonly dir: string;
  /** Replaces the guard's policy file (picked up by its watcher). */
  writePolicies(yaml: string): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `node src/main.ts serve --kubeconfig ...` as the guard identity and waits until it is ready. */
export async function startClusterGuard(plane: ControlPlane, policies: string, config: Record<string, unknown> = {}): Promise<ClusterGuard> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-cluster-guard-'));
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(join(policyDir, 'policies.yaml'), policies);
  const configPath = join(dir, 'config.yaml');
  await writeFile(
    configPath,
    YAML.stringify({
      webhook: { port: 0 },
      ops: { port: 0 },
      tls: { dir: join(dir, 'certs') },
      policies: { dir: policyDir, pollInterval: '1h' },
      cluster: { namespace: GUARD_NAMESPACE },
      view: { bookmarkInterval: '5s', requestTimeout: '10s' },
      ...config,
    }),
  );
  return launchGuard(dir, configPath, plane.kubeconfigPath(GUARD));
}

/** How {@link launchGuard} runs a guard. */
export interface LaunchOptions {
  /** Wait for /readyz (default); false for a guard expected never to turn ready. */
  readonly waitReady?: boolean;
  /** The drain period of its configuration, cut short on stop by a second signal when set. */
  readonly drains?: boolean;
}

/**
 * Starts `node src/main.ts serve --config FILE --kubeconfig FILE` for a guard whose files
 * are in `dir` (`policies/`, `certs/`); removes `dir` when stopped.
 */
export async function launchGuard(dir: string, configPath: string, kubeconfig: string, options: LaunchOptions = {}): Promise<ClusterGuard> {
  const process = await startGuardProcess(['--config', configPath, '--kubeconfig', kubeconfig], 60_000);
  try {
    if (options.waitReady !== false) await waitReady(process);
  } catch (error) {
    await process.stop('SIGKILL');
    throw error;
  }
  const caPem = await readFile(join(dir, 'certs', 'ca.crt'), 'utf8');
  return {
    process,
    caPem,
    dir,
    writePolicies: (yaml) => writeFile(join(dir, 'policies', 'policies.yaml'), yaml),
    async stop() {
      const exited = process.stop('SIGTERM');
      // A second signal cuts the drain short.
      const second = options.drains === true ? setTimeout(() => process.child.kill('SIGTERM'), 300) : undefined;
      await exited;
      clearTimeout(second);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until the guard's /readyz answers 200, failing with its last log lines. */
export async function waitReady(guard: GuardProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await httpGet(`${guard.opsUrl}/readyz`).catch(() => ({ status: 0 }))).status === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the guard did not turn ready within ${timeoutMs} ms; log: ${JSON.stringify(guard.lines.slice(-20))}`);
}

/** Which requests a registered webhook receives. */
export interface WebhookTarget {
  readonly guard: ClusterGuard;
  /** An extra CEL condition (for example on `request.name`), to split requests between guards. */
  readonly condition?: string | undefined;
  /** The CA put in caBundle; the guard's own by default. */
  readonly caPem?: string;
}

/** Service-account namespaces whose identities are agents in the tier: the coarse match the chart renders too. */
export const AGENT_NAMESPACES = ['agents', 'builds'] as const;

const agentCondition = AGENT_NAMESPACES.map((ns) => `request.userInfo.username.startsWith('system:serviceaccount:${ns}:')`).join(' || ');

/** Where a registered webhook sends its reviews: a guard, or any server with its CA. */
export interface WebhookEndpoint {
  /** https://host:port, without a path. */
  readonly url: string;
  readonly caPem: string;
  readonly condition?: string | undefined;
}

function webhooks(kind: 'mutate' | 'validate', endpoints: readonly WebhookEndpoint[]) {
  return endpoints.map((endpoint, i) => ({
    name: `${kind}-${i}.replica-guard.io`,
    admissionReviewVersions: ['v1'],
    sideEffects: 'NoneOnDryRun',
    failurePolicy: 'Fail',
    timeoutSeconds: 10,
    ...(kind === 'mutate' ? { reinvocationPolicy: 'IfNeeded' } : {}),
    clientConfig: { url: `${endpoint.url}/${kind}`, caBundle: Buffer.from(endpoint.caPem).toString('base64') },
    rules: webhookRules(),
    namespaceSelector: {
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [GUARD_NAMESPACE, 'kube-system'] }],
    },
    matchConditions: [
      { name: 'agents-only', expression: agentCondition },
      ...(endpoint.condition === undefined ? [] : [{ name: 'split', expression: endpoint.condition }]),
    ],
  }));
}

/**
 * Registers the guard(s) as a mutating and a validating webhook, rules from
 * src/admission/webhook-rules.ts, `clientConfig.url` on loopback with the guard's CA.
 * The API server fills its webhook cache from a watch: see {@link waitForWebhooks}.
 */
export function registerWebhooks(plane: ControlPlane, targets: readonly WebhookTarget[]): Promise<void> {
  return registerWebhooksFor(
    plane,
    targets.map((t) => ({ url: t.guard.process.webhookUrl, caPem: t.caPem ?? t.guard.caPem, condition: t.condition })),
  );
}

/** Registers any endpoints as the guard is registered (same rules, matchConditions and settings). */
export async function registerWebhooksFor(plane: ControlPlane, endpoints: readonly WebhookEndpoint[]): Promise<void> {
  const base = '/apis/admissionregistration.k8s.io/v1';
  for (const [resource, kind, hook] of [
    ['mutatingwebhookconfigurations', 'MutatingWebhookConfiguration', 'mutate'],
    ['validatingwebhookconfigurations', 'ValidatingWebhookConfiguration', 'validate'],
  ] as const) {
    const body = { apiVersion: 'admissionregistration.k8s.io/v1', kind, metadata: { name: 'replica-guard' }, webhooks: webhooks(hook, endpoints) };
    const answer = await plane.api(ADMIN, `${base}/${resource}/replica-guard?fieldManager=test&force=true`, {
      method: 'PATCH',
      body,
      contentType: 'application/apply-patch+yaml',
    });
    if (answer.status !== 200 && answer.status !== 201) throw new Error(`${kind}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
  }
}

/** Removes both webhook configurations. */
export async function unregisterWebhooks(plane: ControlPlane): Promise<void> {
  const base = '/apis/admissionregistration.k8s.io/v1';
  for (const resource of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations']) {
    await plane.api(ADMIN, `${base}/${resource}/replica-guard`, { method: 'DELETE' });
  }
}

/** How many reviews a guard has answered on one webhook, from its /metrics. */
export async function reviewsAnswered(guard: ClusterGuard, webhook: 'mutate' | 'validate'): Promise<number> {
  const metrics = parseExposition((await httpGet(`${guard.process.opsUrl}/metrics`)).body);
  return metrics
    .filter((s) => s.name === 'replica_guard_admission_requests_total' && s.labels.webhook === webhook)
    .reduce((sum, s) => sum + s.value, 0);
}

/**
 * Waits until the API server calls every target: its webhook configuration cache is
 * filled from a watch, so a configuration just written is not yet in force. Probes with
 * a dry-run CREATE by `agent` (decided, recorded nowhere).
 */
export async function waitForWebhooks(plane: ControlPlane, agent: Identity, namespace: string, targets: readonly ClusterGuard[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  const before = await Promise.all(targets.map((g) => reviewsAnswered(g, 'validate')));
  const waiting = new Set(targets.map((_, i) => i));
  let probe = 0;
  while (waiting.size > 0) {
    if (Date.now() > deadline) throw new Error(`the API server never called guard(s) ${[...waiting].join(', ')}`);
    probe += 1;
    await plane.api(agent, `/apis/apps/v1/namespaces/${namespace}/deployments?dryRun=All`, {
      body: probeDeployment(namespace, `webhook-probe-${probe}`),
    });
    for (const i of [...waiting]) {
      const guard = targets[i];
      if (guard !== undefined && (await reviewsAnswered(guard, 'validate')) > (before[i] ?? 0)) waiting.delete(i);
    }
    if (waiting.size > 0) await new Promise((r) => setTimeout(r, 250));
  }
}

function probeDeployment(namespace: string, name: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: {
      replicas: 0,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'registry.example/probe:1' }] } },
    },
  };
}
