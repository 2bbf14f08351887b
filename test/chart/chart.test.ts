import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { webhookRules } from '../../src/admission/webhook-rules.ts';
import { configSchema } from '../../src/config.ts';
import { CHART_DIR, helm, only, type Rendered, renderChart, requireHelm } from '../helpers/helm.ts';

// The real helm renders the chart; every document is parsed and the points the chart
// promises are asserted on the rendered objects.

const POLICY = join(CHART_DIR, '../../policies/support-agents.yaml');
const WITH_POLICY = ['--set-file', `policies.files.agents=${POLICY}`];

interface Rule {
  readonly apiGroups: readonly string[];
  readonly apiVersions: readonly string[];
  readonly operations: readonly string[];
  readonly resources: readonly string[];
  readonly scope: string;
}
interface MatchCondition {
  name: string;
  expression: string;
}
interface Webhook {
  name: string;
  admissionReviewVersions: string[];
  sideEffects: string;
  failurePolicy: string;
  timeoutSeconds: number;
  reinvocationPolicy?: string;
  clientConfig: { service?: { name: string; namespace: string; path: string; port: number }; url?: string; caBundle?: string };
  namespaceSelector: { matchExpressions: { key: string; operator: string; values: string[] }[] };
  objectSelector?: unknown;
  matchConditions?: MatchCondition[];
  rules: Rule[];
}
interface Container {
  name: string;
  image: string;
  command: string[];
  args: string[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown> & { capabilities: { drop: string[] }; seccompProfile: { type: string } };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  serviceAccountName: string;
  priorityClassName?: string;
  terminationGracePeriodSeconds: number;
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes: ({ name: string } & Record<string, unknown>)[];
  topologySpreadConstraints: { topologyKey: string; maxSkew: number }[];
}
interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

const webhooksOf = (o: Rendered) => o.webhooks as Webhook[];
const podSpecOf = (objects: readonly Rendered[]) => (only(objects, 'Deployment').spec as { template: { spec: PodSpec } }).template.spec;
const containerOf = (objects: readonly Rendered[]) => {
  const [container] = podSpecOf(objects).containers;
  if (container === undefined) throw new Error('the Deployment has no container');
  return container;
};
const guardConfigOf = (objects: readonly Rendered[]) =>
  YAML.parse((only(objects, 'ConfigMap', 'rg-replica-guard-config').data as { 'config.yaml': string })['config.yaml']) as Record<string, unknown>;
const allWebhooks = (objects: readonly Rendered[]) => [
  ...webhooksOf(only(objects, 'MutatingWebhookConfiguration')),
  ...webhooksOf(only(objects, 'ValidatingWebhookConfiguration')),
];
const condition = (w: Webhook, name: string) => w.matchConditions?.find((c) => c.name === name)?.expression;
/** The regular expressions a CEL expression passes to matches(), unescaped. */
const celRegexes = (expression: string) =>
  [...expression.matchAll(/matches\('((?:[^'\\]|\\.)*)'\)/g)].map((m) => new RegExp((m[1] ?? '').replace(/\\(.)/g, '$1')));
/** Rules flattened to group/resource/operation triples, for comparing lists cut differently. */
const flatten = (rules: readonly Rule[]) =>
  rules
    .flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.operations.map((op) => `${g}/${res} ${op} ${r.apiVersions.join(',')} ${r.scope}`))))
    .sort();

beforeAll(requireHelm);

describe('helm lint', () => {
  it.each([
    ['the defaults', []],
    ['a policy', WITH_POLICY],
    ['cert-manager, monitoring and the backstop', [...WITH_POLICY, '--set', 'certificates.mode=cert-manager,monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true,networkPolicy.enabled=true,backstop.enabled=true']],
  ])('passes with %s', async (_what, args) => {
    const run = await helm(['lint', CHART_DIR, '--strict', ...args]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
  });
});

describe('helm template with the defaults', () => {
  let objects: Rendered[];
  beforeAll(async () => {
    objects = await renderChart();
  });

  it('renders the guard and nothing optional', () => {
    const kinds = objects.map((o) => o.kind).sort();
    expect(kinds).toEqual(
      [
        'ClusterRole',
        'ClusterRoleBinding',
        'ConfigMap',
        'ConfigMap',
        'ConfigMap',
        'Deployment',
        'MutatingWebhookConfiguration',
        'PodDisruptionBudget',
        'Pod',
        'Role',
        'RoleBinding',
        'Service',
        'ServiceAccount',
        'ValidatingWebhookConfiguration',
      ].sort(),
    );
  });

  it('runs two replicas with a PodDisruptionBudget, spread across nodes', () => {
    expect((only(objects, 'Deployment').spec as { replicas: number }).replicas).toBe(2);
    expect((only(objects, 'PodDisruptionBudget').spec as { minAvailable: number }).minAvailable).toBe(1);
    expect(podSpecOf(objects).topologySpreadConstraints).toEqual([
      expect.objectContaining({ topologyKey: 'kubernetes.io/hostname', maxSkew: 1 }),
    ]);
    expect(podSpecOf(objects).priorityClassName).toBeUndefined();
  });

  it('meets the restricted Pod Security profile with a numeric UID', () => {
    const pod = podSpecOf(objects);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    const c = containerOf(objects);
    expect(typeof c.securityContext.runAsUser).toBe('number');
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(c.resources.limits).toMatchObject({ memory: expect.any(String) });
    // Writable places are mounted volumes: /tmp and the certificates.
    expect(c.volumeMounts.map((m) => m.mountPath)).toEqual(expect.arrayContaining(['/tmp', '/var/run/replica-guard/certs']));
  });

  it('runs node on the entry point directly, probes /healthz and /readyz, and outlasts the drain', () => {
    const c = containerOf(objects);
    expect(c.command).toEqual(['node', '/app/src/main.ts']);
    expect(c.args).toEqual(['serve', '--config', '/etc/replica-guard/config/config.yaml']);
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    const config = guardConfigOf(objects);
    expect(config.drain).toEqual({ period: '10s' });
    expect(podSpecOf(objects).terminationGracePeriodSeconds).toBeGreaterThan(10);
  });

  it('renders a guard configuration the guard accepts', () => {
    const parsed = configSchema.safeParse(guardConfigOf(objects));
    expect(parsed.error?.issues ?? []).toEqual([]);
    expect(parsed.data).toMatchObject({
      cluster: { inCluster: true, namespace: 'replica-guard' },
      certificates: { mode: 'self', secret: 'rg-replica-guard-certs', peers: 'rg-replica-guard' },
      reconcile: { enabled: true, configMap: 'rg-replica-guard-webhooks', interval: 10_000 },
      drain: { period: 10_000 },
      policies: { dir: '/etc/replica-guard/policies' },
    });
    expect((parsed.data?.tls.dnsNames ?? []).sort()).toEqual(
      ['rg-replica-guard', 'rg-replica-guard.replica-guard', 'rg-replica-guard.replica-guard.svc', 'rg-replica-guard.replica-guard.svc.cluster.local'].sort(),
    );
  });

  it('declares v1 reviews, NoneOnDryRun, Fail, the timeout, the Service and a namespaceSelector no agent can forge', () => {
    const mutating = webhooksOf(only(objects, 'MutatingWebhookConfiguration'));
    const validating = webhooksOf(only(objects, 'ValidatingWebhookConfiguration'));
    expect(mutating.map((w) => w.name)).toEqual(['mutate.replica-guard.io']);
    expect(validating.map((w) => w.name)).toEqual(['validate.replica-guard.io']);
    for (const w of [...mutating, ...validating]) {
      expect(w.admissionReviewVersions).toEqual(['v1']);
      expect(w.sideEffects).toBe('NoneOnDryRun');
      expect(w.failurePolicy).toBe('Fail');
      expect(w.timeoutSeconds).toBe(10);
      expect(w.objectSelector).toBeUndefined();
      expect(w.clientConfig.service).toMatchObject({ name: 'rg-replica-guard', namespace: 'replica-guard', port: 443 });
      expect(w.clientConfig.caBundle).toBeUndefined();
      expect(w.namespaceSelector.matchExpressions).toEqual([
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['replica-guard', 'kube-system'] },
      ]);
    }
    expect(mutating[0]?.reinvocationPolicy).toBe('IfNeeded');
    expect(mutating[0]?.clientConfig.service?.path).toBe('/mutate');
    expect(validating[0]?.reinvocationPolicy).toBeUndefined();
    expect(validating[0]?.clientConfig.service?.path).toBe('/validate');
  });

  it('always excludes the controllers, and with no agent identity matches nobody', () => {
    for (const w of allWebhooks(objects)) {
      expect(w.matchConditions?.map((c) => c.expression)).toEqual([
        "!request.userInfo.username.startsWith('system:serviceaccount:kube-system:')",
        "!request.userInfo.username.startsWith('system:kube-')",
        "!request.userInfo.username.startsWith('system:node:')",
        'false',
      ]);
    }
  });

  it('renders the rules of src/admission/webhook-rules.ts', () => {
    for (const w of allWebhooks(objects)) expect(flatten(w.rules)).toEqual(flatten(webhookRules()));
  });

  it('grants least privilege: no write on workloads, its own configurations and Secret by name', () => {
    const cluster = only(objects, 'ClusterRole').rules as PolicyRule[];
    const namespaced = only(objects, 'Role').rules as PolicyRule[];
    const workloads = new Set(['pods', 'replicationcontrollers', 'deployments', 'replicasets', 'statefulsets', 'daemonsets', 'jobs', 'cronjobs', 'horizontalpodautoscalers']);
    for (const rule of [...cluster, ...namespaced]) {
      if (rule.resources.some((r) => workloads.has(r))) expect(rule.verbs).toEqual(['list', 'watch']);
    }
    const webhookRule = cluster.find((r) => r.apiGroups.includes('admissionregistration.k8s.io'));
    expect(webhookRule).toEqual({
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'],
      resourceNames: ['rg-replica-guard'],
      verbs: ['get', 'list', 'watch', 'update'],
    });
    expect(cluster.some((r) => r.resources.includes('subjectaccessreviews') && r.verbs.join() === 'create')).toBe(true);
    expect(cluster.some((r) => r.apiGroups.includes('metrics.k8s.io'))).toBe(false);
    const secretRules = namespaced.filter((r) => r.resources.includes('secrets'));
    expect(secretRules).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['rg-replica-guard-certs'], verbs: ['get', 'update'] },
    ]);
    expect(namespaced.find((r) => r.resources.includes('configmaps'))?.verbs).toEqual(['get', 'create', 'update']);
    // Events go on the agent's objects, in the agents' namespaces.
    expect(cluster.some((r) => r.resources.includes('events') && r.verbs.includes('create'))).toBe(true);
    expect(namespaced.some((r) => r.resources.includes('events'))).toBe(false);
    expect(only(objects, 'Role').metadata.namespace).toBe('replica-guard');
  });

  it('renders the desired state of both configurations for the guard to keep, equal to the configurations', () => {
    const desired = YAML.parseAllDocuments(
      (only(objects, 'ConfigMap', 'rg-replica-guard-webhooks').data as { 'webhooks.yaml': string })['webhooks.yaml'],
    ).map((d) => d.toJSON() as Rendered);
    expect(desired).toEqual([only(objects, 'MutatingWebhookConfiguration'), only(objects, 'ValidatingWebhookConfiguration')]);
  });

  it('has a helm test pod that checks /healthz through the Service', () => {
    const pod = only(objects, 'Pod');
    expect(pod.metadata.annotations?.['helm.sh/hook']).toBe('test');
    // The NetworkPolicy, when on, admits it by this label.
    expect(pod.metadata.labels?.['replica-guard.io/helm-test']).toBe('true');
    const [c] = (pod.spec as { containers: { command: string[] }[] }).containers;
    expect(c?.command.at(-1)).toBe('http://rg-replica-guard.replica-guard.svc:8080/healthz');
  });
});

describe('agent identities', () => {
  it('come from the policies in values and from agents.*, coarsely; the guard does the fine match', async () => {
    const objects = await renderChart([...WITH_POLICY, '--set', 'agents.namespaces={bots},agents.users={ci-agent},agents.groups={agents:*}']);
    for (const w of allWebhooks(objects)) {
      const expression = condition(w, 'agents') ?? '';
      expect(expression).toContain("request.userInfo.username.startsWith('system:serviceaccount:bots:')");
      expect(expression).toContain("request.userInfo.username == 'ci-agent'");
      const [serviceAccounts, groups] = celRegexes(expression);
      // support-agents.yaml names serviceAccounts ["agents:*"].
      expect(serviceAccounts?.test('system:serviceaccount:agents:planner')).toBe(true);
      expect(serviceAccounts?.test('system:serviceaccount:other:planner')).toBe(false);
      expect(groups?.test('agents:fleet')).toBe(true);
      expect(groups?.test('developers')).toBe(false);
    }
  });

  it('grant PodMetrics reads when a policy measures its need through metricsApi', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'rg-chart-')), 'metrics.yaml');
    await writeFile(file, (await readFile(POLICY, 'utf8')).replace('need:\n', 'need:\n    metricsApi: { targetCpuUtilization: 70 }\n'));
    const granted = (o: readonly Rendered[]) => (only(o, 'ClusterRole').rules as PolicyRule[]).find((r) => r.apiGroups.includes('metrics.k8s.io'));
    expect(granted(await renderChart(['--set-file', `policies.files.agents=${file}`]))).toEqual({ apiGroups: ['metrics.k8s.io'], resources: ['pods'], verbs: ['get', 'list'] });
    expect(granted(await renderChart(WITH_POLICY))).toBeUndefined();
  });

  it('put the policy file into the policies ConfigMap as it is', async () => {
    const objects = await renderChart(WITH_POLICY);
    const data = only(objects, 'ConfigMap', 'rg-replica-guard-policies').data as Record<string, string>;
    expect(data['agents.yaml']).toBe(await readFile(POLICY, 'utf8'));
  });
});

describe('NOTES.txt', () => {
  const notes = async (args: readonly string[]) => {
    const run = await helm(['install', 'rg', CHART_DIR, '--namespace', 'replica-guard', '--dry-run=client', ...args]);
    expect(run.code, run.stderr).toBe(0);
    return run.stdout.slice(run.stdout.indexOf('NOTES:'));
  };

  it('says how to check the policies and that it works, and warns when no agent is known', async () => {
    const none = await notes([]);
    expect(none).toContain('npx replica-guard check');
    expect(none).toContain('helm test rg -n replica-guard');
    expect(none).toContain('WARNING: no agent identity is known');
    expect(await notes(WITH_POLICY)).not.toContain('WARNING');
  });
});

describe('extra resources', () => {
  it('add the configured scale and custom resources to both configurations, as webhookRules does, and RBAC to watch them', async () => {
    const values = {
      scaleResources: [{ group: 'example.com', resource: 'agentpools', kind: 'AgentPool', replicasPath: 'spec.size' }],
      customResources: [{ group: 'ray.io', version: 'v1', resource: 'rayclusters', kind: 'RayCluster', countPaths: ['spec.workerGroupSpecs[].replicas'] }],
    };
    const file = join(await mkdtemp(join(tmpdir(), 'rg-chart-')), 'values.yaml');
    await writeFile(file, YAML.stringify(values));
    const objects = await renderChart(['-f', file]);
    for (const w of allWebhooks(objects)) {
      expect(flatten(w.rules)).toEqual(flatten(webhookRules(values.scaleResources, values.customResources)));
    }
    const cluster = only(objects, 'ClusterRole').rules as PolicyRule[];
    expect(cluster).toContainEqual({ apiGroups: ['ray.io'], resources: ['rayclusters'], verbs: ['list', 'watch'] });
    const config = configSchema.parse(guardConfigOf(objects));
    expect(config.scaleResources).toEqual(values.scaleResources);
    expect(config.view.customResources).toMatchObject(values.customResources);
  });
});

describe('certificates through cert-manager', () => {
  it('render a Certificate, the CA injector annotation, the Secret as the certificate directory, and no Secret access', async () => {
    const objects = await renderChart(['--set', 'certificates.mode=cert-manager']);
    const serving = only(objects, 'Certificate', 'rg-replica-guard-serving');
    expect(serving.spec).toMatchObject({ secretName: 'rg-replica-guard-tls', issuerRef: { name: 'rg-replica-guard-ca', kind: 'Issuer' } });
    expect((serving.spec as { dnsNames: string[] }).dnsNames).toContain('rg-replica-guard.replica-guard.svc');
    expect(objects.filter((o) => o.kind === 'Issuer').map((o) => o.metadata.name).sort()).toEqual(['rg-replica-guard-ca', 'rg-replica-guard-selfsigned']);
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      expect(only(objects, kind).metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe('replica-guard/rg-replica-guard-serving');
    }
    expect(podSpecOf(objects).volumes.find((v) => v.name === 'certs')).toEqual({ name: 'certs', secret: { secretName: 'rg-replica-guard-tls' } });
    expect(configSchema.parse(guardConfigOf(objects)).certificates.mode).toBe('external');
    expect((only(objects, 'Role').rules as PolicyRule[]).some((r) => r.resources.includes('secrets'))).toBe(false);
  });

  it('use a given issuer instead of creating one', async () => {
    const objects = await renderChart(['--set', 'certificates.mode=cert-manager,certificates.certManager.issuerRef.name=corp,certificates.certManager.issuerRef.kind=ClusterIssuer']);
    expect(objects.some((o) => o.kind === 'Issuer')).toBe(false);
    expect(only(objects, 'Certificate').spec).toMatchObject({ issuerRef: { name: 'corp', kind: 'ClusterIssuer' } });
  });
});

describe('monitoring', () => {
  it('renders the ServiceMonitor, the generated rules, the dashboard and the NetworkPolicy when asked', async () => {
    const objects = await renderChart([
      '--set',
      'monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true,networkPolicy.enabled=true,networkPolicy.apiServerCIDRs={10.0.0.0/8}',
    ]);
    expect(only(objects, 'ServiceMonitor').spec).toMatchObject({ endpoints: [{ port: 'metrics', path: '/metrics' }] });
    const rules = YAML.parse(await readFile(join(CHART_DIR, 'prometheus-rules.yaml'), 'utf8')) as unknown;
    expect(only(objects, 'PrometheusRule').spec).toEqual(rules);
    const dashboard = only(objects, 'ConfigMap', 'rg-replica-guard-dashboard');
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse((dashboard.data as Record<string, string>)['replica-guard.json'] ?? '')).toEqual(
      JSON.parse(await readFile(join(CHART_DIR, 'dashboards/replica-guard.json'), 'utf8')),
    );
    const policy = only(objects, 'NetworkPolicy').spec as { ingress: { ports: { port: string }[]; from?: unknown[] }[] };
    expect(policy.ingress).toEqual([
      { ports: [{ port: 'webhook', protocol: 'TCP' }], from: [{ ipBlock: { cidr: '10.0.0.0/8' } }] },
      {
        ports: [{ port: 'metrics', protocol: 'TCP' }],
        from: [{ namespaceSelector: {}, podSelector: {} }, { podSelector: { matchLabels: { 'replica-guard.io/helm-test': 'true' } } }],
      },
    ]);
  });
});

describe('the native backstop', () => {
  interface Validation {
    expression: string;
  }
  const backstop = (objects: readonly Rendered[]) => ({
    policy: only(objects, 'ValidatingAdmissionPolicy'),
    binding: only(objects, 'ValidatingAdmissionPolicyBinding'),
  });

  it('uses v1beta1 on 1.28', async () => {
    const { policy, binding } = backstop(await renderChart([...WITH_POLICY, '--set', 'backstop.enabled=true', '--kube-version', '1.28.0']));
    expect(policy.apiVersion).toBe('admissionregistration.k8s.io/v1beta1');
    expect(binding.apiVersion).toBe('admissionregistration.k8s.io/v1beta1');
  });

  it('uses v1 on 1.30 where the API server serves it, with the caps of the policy for exactly its agents', async () => {
    const objects = await renderChart([
      ...WITH_POLICY,
      '--set',
      'backstop.enabled=true',
      '--kube-version',
      '1.30.0',
      '--api-versions',
      'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy',
    ]);
    const { policy, binding } = backstop(objects);
    expect(policy.apiVersion).toBe('admissionregistration.k8s.io/v1');
    expect(binding.spec).toEqual({ policyName: policy.metadata.name, validationActions: ['Deny'] });
    const spec = policy.spec as { validations: Validation[]; matchConditions: MatchCondition[] };
    // support-agents.yaml: perWorkload 10, step 3.
    expect(spec.validations.map((v) => v.expression)).toEqual([
      '!has(object.spec.replicas) || object.spec.replicas <= 10',
      '!has(object.spec.replicas) || object.spec.replicas - (oldObject == null ? 0 : (has(oldObject.spec.replicas) ? oldObject.spec.replicas : 1)) <= 3',
    ]);
    const agents = spec.matchConditions.find((c) => c.name === 'agents')?.expression ?? '';
    const [account] = celRegexes(agents);
    expect(account?.test('system:serviceaccount:agents:planner')).toBe(true);
    expect(account?.test('system:serviceaccount:default:planner')).toBe(false);
    expect(spec.matchConditions.map((c) => c.name)).toContain('not-kube-system-service-accounts');
  });

  it('follows what the cluster serves over its version: v1beta1 where only the beta is served', async () => {
    const args = [...WITH_POLICY, '--set', 'backstop.enabled=true', '--kube-version', '1.31.0'];
    expect(backstop(await renderChart(args)).policy.apiVersion).toBe('admissionregistration.k8s.io/v1');
    const betaOnly = await renderChart([...args, '--api-versions', 'admissionregistration.k8s.io/v1beta1/ValidatingAdmissionPolicy']);
    expect(backstop(betaOnly).policy.apiVersion).toBe('admissionregistration.k8s.io/v1beta1');
  });

  it('is off by default', async () => {
    const objects = await renderChart(WITH_POLICY);
    expect(objects.some((o) => o.kind.startsWith('ValidatingAdmissionPolicy'))).toBe(false);
  });
});

describe('url mode', () => {
  it('points both configurations at the URL and renders no Deployment or Service', async () => {
    const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const objects = await renderChart(['--set', 'webhook.url=https://10.0.0.5:8443', '--set-string', `webhook.caBundle=${ca}`]);
    for (const w of allWebhooks(objects)) {
      expect(w.clientConfig.service).toBeUndefined();
      expect(w.clientConfig.url).toBe(`https://10.0.0.5:8443${w.name.startsWith('mutate') ? '/mutate' : '/validate'}`);
      expect(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString()).toBe(ca);
    }
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'Pod']) expect(objects.some((o) => o.kind === kind)).toBe(false);
    // Certificates made with `replica-guard certs`: the guard serves them and never touches caBundle.
    expect(guardConfigOf(objects)).toMatchObject({ cluster: { inCluster: false }, certificates: { mode: 'external', peers: '' } });
    const selfManaged = await renderChart(['--set', 'webhook.url=https://10.0.0.5:8443']);
    expect(guardConfigOf(selfManaged)).toMatchObject({ certificates: { mode: 'self', secret: 'rg-replica-guard-certs', peers: '' } });
  });

  it('refuses a URL with a path', async () => {
    const run = await helm(['template', 'rg', CHART_DIR, '--set', 'webhook.url=https://10.0.0.5:8443/validate']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/webhook.*url/);
  });
});

describe('an existing policy ConfigMap', () => {
  it('is mounted instead of one from values', async () => {
    const objects = await renderChart(['--set', 'policies.existingConfigMap=team-policies']);
    expect(objects.some((o) => o.metadata.name === 'rg-replica-guard-policies')).toBe(false);
    expect(podSpecOf(objects).volumes.find((v) => v.name === 'policies')).toEqual({ name: 'policies', configMap: { name: 'team-policies' } });
  });
});

describe('the version guard', () => {
  it('refuses Kubernetes 1.27 with a clear message', async () => {
    const run = await helm(['template', 'rg', CHART_DIR, ...WITH_POLICY, '--kube-version', '1.27.0']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('replica-guard needs Kubernetes 1.28 or later');
    expect(run.stderr).toContain('webhook.allowWithoutMatchConditions=true');
  });

  it('renders failurePolicy Ignore without matchConditions on 1.27 with the opt-in', async () => {
    const objects = await renderChart([...WITH_POLICY, '--kube-version', '1.27.0', '--set', 'webhook.allowWithoutMatchConditions=true']);
    for (const w of allWebhooks(objects)) {
      expect(w.failurePolicy).toBe('Ignore');
      expect(w.matchConditions).toBeUndefined();
    }
  });

  it('lets provider versions of 1.28 pass', async () => {
    const objects = await renderChart([...WITH_POLICY, '--kube-version', 'v1.28.3-eks-4f4795d']);
    for (const w of allWebhooks(objects)) expect(w.failurePolicy).toBe('Fail');
  });
});

describe('values.schema.json', () => {
  it('refuses an unknown key and a misspelled nested one', async () => {
    for (const set of ['replicas=3', 'webhook.failurePolcy=Ignore', 'certificates.mode=vault']) {
      const run = await helm(['template', 'rg', CHART_DIR, '--set', set]);
      expect(run.code, set).not.toBe(0);
    }
  });

  it('checks the config value against the guard configuration schema, and the guard accepts the merge', async () => {
    const objects = await renderChart(['--set', 'config.load.prometheus.url=http://prometheus.monitoring:9090,config.deadline.margin=3s']);
    const merged = configSchema.parse(guardConfigOf(objects));
    expect(merged.load.prometheus?.url).toBe('http://prometheus.monitoring:9090');
    expect(merged.deadline.margin).toBe(3000);
    expect(merged.cluster.inCluster).toBe(true);
    for (const set of ['config.bogus=1', 'config.deadline.margin=soon']) {
      const run = await helm(['template', 'rg', CHART_DIR, '--set', set]);
      expect(run.code, set).not.toBe(0);
    }
  });

  it('lets the Kubernetes pass-through fields through as they are', async () => {
    const objects = await renderChart([
      '--set',
      'resources.limits.nvidia\\.com/gpu=1,affinity.nodeAffinity.foo=bar,tolerations[0].key=dedicated,podAnnotations.a=b,extraEnv[0].name=X,extraEnv[0].value=y,priorityClassName=system-cluster-critical',
    ]);
    const c = containerOf(objects);
    expect(c.resources.limits).toMatchObject({ 'nvidia.com/gpu': 1 });
    expect(podSpecOf(objects).priorityClassName).toBe('system-cluster-critical');
  });
});
