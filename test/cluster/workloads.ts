import { BUILT_IN_KINDS } from '../../src/admission/workload-kinds.ts';
import { ADMIN, type ControlPlane, type Identity } from './control-plane.ts';

/** The image every test agent runs: with the service account, what marks a clone. */
export const AGENT_IMAGE = 'registry.example/agent:1.0';

/** A pod template running as `serviceAccount`. */
export function podTemplate(app: string, serviceAccount: string, image = AGENT_IMAGE) {
  return {
    metadata: { labels: { app } },
    spec: { serviceAccountName: serviceAccount, containers: [{ name: 'agent', image }] },
  };
}

/** The API path of a built-in kind's collection, or of one object when `name` is given. */
export function pathOf(resource: WorkloadResource, namespace: string, name?: string): string {
  const base = RESOURCE_PATHS[resource];
  return `${base}/namespaces/${namespace}/${resource}${name === undefined ? '' : `/${name}`}`;
}

const RESOURCE_PATHS = {
  deployments: '/apis/apps/v1',
  replicasets: '/apis/apps/v1',
  statefulsets: '/apis/apps/v1',
  daemonsets: '/apis/apps/v1',
  replicationcontrollers: '/api/v1',
  pods: '/api/v1',
  jobs: '/apis/batch/v1',
  cronjobs: '/apis/batch/v1',
  horizontalpodautoscalers: '/apis/autoscaling/v2',
} as const;

/** The resources the tier writes. */
export type WorkloadResource = keyof typeof RESOURCE_PATHS;

/** A workload with `replicas` of the pod template, for the kinds that have a replica count. */
export function replicated(
  resource: 'deployments' | 'replicasets' | 'statefulsets' | 'replicationcontrollers',
  namespace: string,
  name: string,
  replicas: number,
  serviceAccount: string,
) {
  const kinds = {
    deployments: ['apps/v1', 'Deployment'],
    replicasets: ['apps/v1', 'ReplicaSet'],
    statefulsets: ['apps/v1', 'StatefulSet'],
    replicationcontrollers: ['v1', 'ReplicationController'],
  } as const;
  const [apiVersion, kind] = kinds[resource];
  const selector = resource === 'replicationcontrollers' ? { app: name } : { matchLabels: { app: name } };
  return {
    apiVersion,
    kind,
    metadata: { name, namespace },
    spec: {
      replicas,
      selector,
      ...(resource === 'statefulsets' ? { serviceName: name } : {}),
      template: podTemplate(name, serviceAccount),
    },
  };
}

/** A Deployment: the kind most tests use. */
export const deployment = (namespace: string, name: string, replicas: number, serviceAccount: string) =>
  replicated('deployments', namespace, name, replicas, serviceAccount);

/** A bare Pod. */
export function pod(namespace: string, name: string, serviceAccount: string, image = AGENT_IMAGE) {
  const template = podTemplate(name, serviceAccount, image);
  return { apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, name, namespace }, spec: template.spec };
}

/** A Job running `parallelism` pods at once. */
export function job(namespace: string, name: string, parallelism: number, serviceAccount: string, image = AGENT_IMAGE) {
  const template = podTemplate(name, serviceAccount, image);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace },
    spec: { parallelism, completions: parallelism, template: { ...template, spec: { ...template.spec, restartPolicy: 'Never' } } },
  };
}

/** A CronJob whose runs start `parallelism` pods. */
export function cronJob(namespace: string, name: string, parallelism: number, serviceAccount: string, image = AGENT_IMAGE) {
  const { spec } = job(namespace, name, parallelism, serviceAccount, image);
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name, namespace },
    spec: { schedule: '*/5 * * * *', concurrencyPolicy: 'Forbid', jobTemplate: { spec } },
  };
}

/** A DaemonSet on the nodes matching `nodeSelector` (every node when empty). */
export function daemonSet(namespace: string, name: string, serviceAccount: string, nodeSelector: Record<string, string> = {}) {
  const template = podTemplate(name, serviceAccount);
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace },
    spec: { selector: { matchLabels: { app: name } }, template: { ...template, spec: { ...template.spec, nodeSelector } } },
  };
}

/** Creates an object as `identity`; resolves with the API server's answer (never throws on a denial). */
export function create(plane: ControlPlane, identity: Identity, resource: WorkloadResource, object: { metadata: { namespace: string } }) {
  return plane.api(identity, pathOf(resource, object.metadata.namespace), { body: object });
}

/** What the API server stored, or undefined when it has no such object. */
export async function stored<T = StoredWorkload>(
  plane: ControlPlane,
  resource: WorkloadResource,
  namespace: string,
  name: string,
): Promise<T | undefined> {
  const answer = await plane.api<T>(ADMIN, pathOf(resource, namespace, name));
  if (answer.status === 404) return undefined;
  if (answer.status !== 200) throw new Error(`GET ${resource} ${namespace}/${name}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

/** The fields of a stored workload the tests read. */
export interface StoredWorkload {
  readonly metadata: { readonly name: string; readonly uid: string; readonly annotations?: Record<string, string> };
  readonly spec: {
    readonly replicas?: number;
    readonly parallelism?: number;
    readonly maxReplicas?: number;
    readonly minReplicas?: number;
    readonly strategy?: { readonly rollingUpdate?: { readonly maxSurge?: number | string } };
    readonly template?: { readonly spec?: { readonly nodeSelector?: Record<string, string> } };
  };
}

/** The stored `spec.replicas` of a workload. */
export async function storedReplicas(plane: ControlPlane, resource: WorkloadResource, namespace: string, name: string): Promise<number | undefined> {
  return (await stored(plane, resource, namespace, name))?.spec.replicas;
}

/** The message of an API server refusal (a webhook denial arrives as a Status). */
export function refusal(answer: { status: number; body: unknown }): string {
  const body = answer.body as { message?: unknown };
  return typeof body.message === 'string' ? body.message : JSON.stringify(answer.body);
}

/**
 * Lets every service account of the agents' namespaces write workloads anywhere, as an
 * over-trusted agent would be allowed to: RBAC lets it, the guard is what holds it back.
 */
export async function grantAgentsWorkloadAccess(plane: ControlPlane, namespaces: readonly string[]): Promise<void> {
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  // Every kind the guard judges, and the scale subresource of those that have one.
  const kinds = [...BUILT_IN_KINDS.values()];
  const role = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'test-agent-workloads' },
    rules: [
      {
        apiGroups: [...new Set(kinds.map((k) => k.group))],
        resources: kinds.flatMap((k) => (k.scalable ? [k.resource, `${k.resource}/scale`] : [k.resource])),
        verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
      },
    ],
  };
  await plane.must(ADMIN, `${rbac}/clusterroles`, { body: role });
  await plane.must(ADMIN, `${rbac}/clusterrolebindings`, {
    body: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'test-agent-workloads' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'test-agent-workloads' },
      subjects: namespaces.map((ns) => ({ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: `system:serviceaccounts:${ns}` })),
    },
  });
}

/** One answer of a write stream: the status, and the API server's message when refused. */
export interface StreamAnswer {
  readonly status: number;
  readonly message: string;
}

/** A running stream of scale writes. */
export interface WriteStream {
  /** Every answer so far, in arrival order. */
  readonly answers: readonly StreamAnswer[];
  /** Stops the writers; resolves once each has its last answer. */
  stop(): Promise<readonly StreamAnswer[]>;
}

/**
 * `writers` loops of `identity` scaling a Deployment between 1 and 2 replicas through its
 * scale subresource, each waiting for its answer before the next write.
 */
export function startScaleStream(plane: ControlPlane, identity: Identity, namespace: string, name: string, writers = 4): WriteStream {
  const answers: StreamAnswer[] = [];
  let streaming = true;
  const writer = async (offset: number) => {
    for (let i = offset; streaming; i++) {
      const answer = await plane.api(identity, `${pathOf('deployments', namespace, name)}/scale`, {
        method: 'PATCH',
        body: { spec: { replicas: 1 + (i % 2) } },
        contentType: 'application/merge-patch+json',
      });
      answers.push({ status: answer.status, message: answer.status === 200 ? '' : refusal(answer) });
    }
  };
  const running = Array.from({ length: writers }, (_, i) => writer(i));
  return {
    answers,
    async stop() {
      streaming = false;
      await Promise.all(running);
      return answers;
    },
  };
}

/** The answers that are neither stored nor a webhook's clean denial (a failed call, a timeout, an error). */
export function failedWrites(answers: readonly StreamAnswer[]): StreamAnswer[] {
  return answers.filter((a) => !(a.status === 200 || (a.status === 403 && /denied the request/.test(a.message))));
}
