import type { NodeInfo } from '../admission/node-eligibility.ts';
import type { PodTemplate, WorkloadKind } from '../admission/workload-kinds.ts';
import { podFingerprints } from '../core/fingerprint.ts';
import type { InstanceCount, WorkloadFingerprint, WorkloadSnapshot } from '../core/types.ts';
import { parseQuantity } from '../load/quantity.ts';
import type { RawObject } from './list-watch.ts';

/**
 * Turns the objects a watch delivers into the little the guard keeps of them: a
 * `WorkloadSnapshot` counted by the admission layer's own per-kind counting (never a
 * second one), the facts loss detection needs, a node's name and labels. Whole objects
 * are never kept: a large cluster's pods are gigabytes of JSON.
 */

/** What loss detection needs of a workload that owns pods. */
export interface OwnerFacts {
  /** The steady count, as counted for the snapshot. */
  readonly steady: number;
  /** A Job that completed or failed: its remaining pods go, and that is not a loss. */
  readonly terminal: boolean;
  /** Has a deletionTimestamp: its pods are being collected. */
  readonly deleting: boolean;
  /** A StatefulSet's `status.updateRevision`: pods of another revision are being replaced. */
  readonly revision?: string | undefined;
  /** A DaemonSet replacing its pods with a new template (its status has no revision to compare). */
  readonly rollingOut?: boolean | undefined;
}

/** What loss detection needs of a pod. */
export interface PodFacts {
  readonly uid: string;
  /** The controller ownerReference's UID, when the view knows that kind of owner. */
  readonly ownerUid: string | undefined;
  /** `status.phase`; `''` when not reported yet. */
  readonly phase: string;
  /** Has a deletionTimestamp: someone deleted it. */
  readonly deleting: boolean;
  readonly serviceAccount: string;
  /** The `controller-revision-hash` label (StatefulSet and DaemonSet pods). */
  readonly revision: string | undefined;
  /**
   * The pod's CPU request in millicores, summed over what runs (see {@link podCpuRequestMillis}),
   * for the metrics-api load source; undefined when a running container requests none.
   * A small integer: V8 keeps it inline in the object, no allocation per pod.
   */
  readonly cpuRequestMillis: number | undefined;
}

/** A workload as the view keeps it. */
export interface StrippedWorkload {
  readonly snapshot: WorkloadSnapshot;
  readonly owner: OwnerFacts;
  /** Set when the count could not be computed (a DaemonSet before the nodes are known). */
  readonly uncounted?: string | undefined;
}

/**
 * Strings that repeat across objects (namespaces, service accounts, fingerprints, label
 * values) kept once. Bounded: past `limit` entries it starts afresh, which only costs the
 * sharing of strings seen before, never correctness.
 */
export class Interner {
  readonly #strings = new Map<string, string>();
  readonly #fingerprints = new Map<string, WorkloadFingerprint>();
  readonly #lists = new Map<string, readonly string[]>();
  readonly #limit: number;

  constructor(limit = 200_000) {
    this.#limit = limit;
  }

  string(value: string): string {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    if (this.#strings.size >= this.#limit) this.#strings.clear();
    this.#strings.set(value, value);
    return value;
  }

  fingerprint(fp: WorkloadFingerprint): WorkloadFingerprint {
    const known = this.#fingerprints.get(fp.key);
    if (known) return known;
    if (this.#fingerprints.size >= this.#limit) this.#fingerprints.clear();
    const kept = { key: this.string(fp.key), image: this.string(fp.image) };
    this.#fingerprints.set(kept.key, kept);
    return kept;
  }

  list(values: readonly string[]): readonly string[] {
    const id = values.join('\u0000');
    const known = this.#lists.get(id);
    if (known) return known;
    if (this.#lists.size >= this.#limit) this.#lists.clear();
    const kept = Object.freeze(values.map((v) => this.string(v)));
    this.#lists.set(id, kept);
    return kept;
  }
}

/** The owner kinds the view keeps, as `group/Kind`: only those make an object "not a top owner". */
export type TrackedOwnerKinds = ReadonlySet<string>;

interface OwnerReference {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly uid?: string;
  readonly controller?: boolean;
}

interface RawMetadata {
  readonly name?: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly deletionTimestamp?: string | null;
  readonly labels?: Readonly<Record<string, string>> | null;
  readonly ownerReferences?: readonly OwnerReference[] | null;
  readonly annotations?: Readonly<Record<string, unknown>> | null;
}

const metadataOf = (raw: RawObject): RawMetadata => (raw.metadata ?? {}) as RawMetadata;

/** `apps/v1` → `apps`; `v1` → `''`. */
export function groupOf(apiVersion: string | undefined): string {
  if (!apiVersion) return '';
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/**
 * The UID of the object's controller, when it is of a kind the view keeps. An object
 * controlled by something the view does not know (a Knative Revision's Deployment, an
 * operator's pods) is treated as a top owner, so its instances are counted somewhere
 * rather than nowhere.
 */
export function controllerUidOf(raw: RawObject, tracked: TrackedOwnerKinds): string | undefined {
  for (const ref of metadataOf(raw).ownerReferences ?? []) {
    if (ref.controller === true && ref.uid && tracked.has(`${groupOf(ref.apiVersion)}/${ref.kind ?? ''}`)) return ref.uid;
  }
  return undefined;
}

/** A pod runs as `default` when neither field names a service account (as the admission layer reads it). */
function serviceAccountOf(spec: { serviceAccountName?: string | null; serviceAccount?: string | null }): string {
  return spec.serviceAccountName || spec.serviceAccount || 'default';
}

function podsOf(templates: readonly PodTemplate[], intern: Interner) {
  const serviceAccounts = intern.list([...new Set(templates.map((t) => serviceAccountOf(t.spec)))]);
  const fingerprints = templates.flatMap((t) =>
    podFingerprints(serviceAccountOf(t.spec), t.spec.containers ?? []).map((fp) => intern.fingerprint(fp)),
  );
  return { serviceAccounts, fingerprints };
}

/** Whether a Job has finished, by its conditions: its remaining pods are then stopped. */
function jobTerminal(raw: RawObject): boolean {
  const status = raw.status as { conditions?: readonly { type?: string; status?: string }[] | null } | undefined;
  return (status?.conditions ?? []).some(
    (c) => c.status === 'True' && (c.type === 'Complete' || c.type === 'Failed' || c.type === 'FailureTarget' || c.type === 'SuccessCriteriaMet'),
  );
}

/** A DaemonSet whose pods are not all of its current template yet (or whose controller has not seen its last change). */
function daemonSetRollingOut(raw: RawObject): boolean {
  const status = raw.status as
    | { updatedNumberScheduled?: number; desiredNumberScheduled?: number; observedGeneration?: number }
    | undefined;
  const generation = (raw.metadata as { generation?: number } | undefined)?.generation;
  if (generation !== undefined && (status?.observedGeneration ?? 0) < generation) return true;
  return (status?.updatedNumberScheduled ?? 0) < (status?.desiredNumberScheduled ?? 0);
}

function hpaTarget(parsed: unknown): WorkloadSnapshot['scaleTarget'] {
  // The HPA kind's schema was checked: scaleTargetRef is there.
  const ref = (parsed as { spec: { scaleTargetRef: { apiVersion?: string | null; kind: string; name: string } } }).spec
    .scaleTargetRef;
  return { group: groupOf(ref.apiVersion ?? undefined), kind: ref.kind, name: ref.name };
}

/**
 * Strips a workload object to its snapshot, counted by `kind.count` with the nodes
 * given. Throws with the schema's complaint when a field counting reads has the wrong
 * shape (the caller logs it and drops the object).
 */
export function stripWorkload(
  kind: WorkloadKind,
  raw: RawObject,
  nodes: readonly NodeInfo[] | undefined,
  tracked: TrackedOwnerKinds,
  intern: Interner,
): StrippedWorkload {
  const parsed = kind.shape.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${kind.kind}: ${(issue?.path ?? []).join('.')}: ${issue?.message ?? 'invalid'}`);
  }
  const meta = metadataOf(raw);
  const counted = kind.count(parsed.data as never, { nodes });
  const count: InstanceCount = 'count' in counted ? counted.count : { steady: 0, extra: { type: 'none' } };
  const pods = podsOf(kind.podTemplates(parsed.data as never), intern);
  const controllerUid = controllerUidOf(raw, tracked);
  const snapshot: WorkloadSnapshot = {
    ref: {
      group: kind.group,
      kind: kind.kind,
      namespace: intern.string(meta.namespace ?? ''),
      name: meta.name ?? '',
      uid: meta.uid,
    },
    count,
    serviceAccounts: pods.serviceAccounts,
    fingerprints: pods.fingerprints,
    ...(kind.kind === 'HorizontalPodAutoscaler' ? { scaleTarget: hpaTarget(parsed.data) } : {}),
    ...(controllerUid ? { controllerUid } : {}),
    ...justificationOf(meta),
  };
  const updateRevision = kind.kind === 'StatefulSet' ? (raw.status as { updateRevision?: string } | undefined)?.updateRevision : undefined;
  return {
    snapshot,
    owner: {
      steady: count.steady,
      terminal: kind.kind === 'Job' && jobTerminal(raw),
      deleting: Boolean(meta.deletionTimestamp),
      ...(updateRevision ? { revision: intern.string(updateRevision) } : {}),
      ...(kind.kind === 'DaemonSet' && daemonSetRollingOut(raw) ? { rollingOut: true } : {}),
    },
    ...('unknown' in counted ? { uncounted: counted.unknown } : {}),
  };
}

/**
 * What a DaemonSet's count depends on besides the nodes, kept so that it can be counted
 * again by the same `kind.count` when the nodes change: the node selector, the required
 * node affinity and the update strategy. A few hundred bytes, not the whole object.
 */
export function daemonSetCountInput(raw: RawObject): RawObject {
  const spec = (raw.spec ?? {}) as {
    template?: { spec?: { nodeSelector?: unknown; affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: unknown } } } };
    updateStrategy?: unknown;
  };
  const podSpec = spec.template?.spec ?? {};
  const required = podSpec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  return {
    metadata: {},
    spec: {
      template: {
        spec: {
          ...(podSpec.nodeSelector ? { nodeSelector: podSpec.nodeSelector } : {}),
          ...(required ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } } } : {}),
        },
      },
      ...(spec.updateStrategy ? { updateStrategy: spec.updateStrategy } : {}),
    },
  };
}

/** A stripped pod: its facts, and when it has no known controller, its snapshot as a bare-Pod workload. */
export interface StrippedPod {
  readonly facts: PodFacts;
  readonly bare: WorkloadSnapshot | undefined;
}

/**
 * Strips a pod. Only a pod without a known controller is a workload of its own (a bare
 * Pod, counted by the Pod kind); the others are instances of their owner, counted there,
 * and only their loss-relevant facts are kept.
 */
export function stripPod(podKind: WorkloadKind, raw: RawObject, tracked: TrackedOwnerKinds, intern: Interner): StrippedPod {
  const meta = metadataOf(raw);
  const spec = (raw.spec ?? {}) as { serviceAccountName?: string | null; serviceAccount?: string | null };
  const phase = (raw.status as { phase?: string } | undefined)?.phase ?? '';
  const ownerUid = controllerUidOf(raw, tracked);
  const revision = meta.labels?.['controller-revision-hash'];
  const facts: PodFacts = {
    uid: meta.uid ?? '',
    ownerUid,
    phase: intern.string(phase),
    deleting: Boolean(meta.deletionTimestamp),
    serviceAccount: intern.string(serviceAccountOf(spec)),
    revision: revision === undefined ? undefined : intern.string(revision),
    cpuRequestMillis: podCpuRequestMillis(raw.spec),
  };
  if (ownerUid !== undefined) return { facts, bare: undefined };
  const bare = stripWorkload(podKind, raw, undefined, tracked, intern).snapshot;
  return { facts, bare };
}

interface ContainerRequests {
  readonly restartPolicy?: string | null;
  readonly resources?: { readonly requests?: Readonly<Record<string, unknown>> | null } | null;
}

function cpuMillisOf(requests: Readonly<Record<string, unknown>> | null | undefined): number | undefined {
  const cpu = requests?.cpu;
  const cores = typeof cpu === 'string' ? parseQuantity(cpu) : typeof cpu === 'number' ? cpu : undefined;
  return cores === undefined || !(cores >= 0) ? undefined : Math.round(cores * 1000);
}

/**
 * A pod's CPU request in millicores, as the HPA sums it for a utilisation target: every
 * container plus the sidecars (init containers with `restartPolicy: Always`), since
 * metrics-server's usage covers every container that runs; a pod-level request
 * (`spec.resources`) replaces the sum when set. Undefined when one of them requests no
 * CPU: utilisation against requests is then undefined, as the HPA says too.
 */
export function podCpuRequestMillis(spec: unknown): number | undefined {
  if (typeof spec !== 'object' || spec === null) return undefined;
  const s = spec as {
    readonly containers?: readonly ContainerRequests[] | null;
    readonly initContainers?: readonly ContainerRequests[] | null;
    readonly resources?: { readonly requests?: Readonly<Record<string, unknown>> | null } | null;
  };
  const podLevel = cpuMillisOf(s.resources?.requests);
  if (podLevel !== undefined) return podLevel;
  const running = [...(s.containers ?? []), ...(s.initContainers ?? []).filter((c) => c.restartPolicy === 'Always')];
  if (running.length === 0) return undefined;
  let sum = 0;
  for (const c of running) {
    const millis = cpuMillisOf(c.resources?.requests);
    if (millis === undefined) return undefined;
    sum += millis;
  }
  return sum;
}

/**
 * A workload's pod selector in the API's `labelSelector` form (`app=web,tier in (a,b)`):
 * what the metrics-api source sends to metrics.k8s.io so that the answer holds the
 * workload's pods rather than the whole namespace's. Deployments, ReplicaSets and
 * StatefulSets have a LabelSelector, ReplicationControllers a map; other kinds none
 * (undefined). An empty selector is `''`. Which pods belong to the workload is decided by
 * their owner references, not by this: it only narrows the list.
 */
export function podSelectorOf(kind: { readonly group: string; readonly kind: string }, raw: RawObject): string | undefined {
  const selector = (raw.spec as { selector?: unknown } | undefined)?.selector;
  if (typeof selector !== 'object' || selector === null) return undefined;
  const terms: string[] = [];
  if (kind.group === '' && kind.kind === 'ReplicationController') {
    for (const [k, v] of Object.entries(selector)) if (typeof v === 'string') terms.push(`${k}=${v}`);
    return terms.join(',');
  }
  if (kind.group !== 'apps' || !['Deployment', 'ReplicaSet', 'StatefulSet'].includes(kind.kind)) return undefined;
  const { matchLabels, matchExpressions } = selector as {
    matchLabels?: Readonly<Record<string, unknown>> | null;
    matchExpressions?: readonly { key?: unknown; operator?: unknown; values?: unknown }[] | null;
  };
  for (const [k, v] of Object.entries(matchLabels ?? {})) if (typeof v === 'string') terms.push(`${k}=${v}`);
  for (const e of matchExpressions ?? []) {
    if (typeof e.key !== 'string') return undefined;
    const values = Array.isArray(e.values) ? e.values.filter((v): v is string => typeof v === 'string') : [];
    if (e.operator === 'In') terms.push(`${e.key} in (${values.join(',')})`);
    else if (e.operator === 'NotIn') terms.push(`${e.key} notin (${values.join(',')})`);
    else if (e.operator === 'Exists') terms.push(e.key);
    else if (e.operator === 'DoesNotExist') terms.push(`!${e.key}`);
    // An operator this code does not know: no selector (the whole namespace, filtered by owner) rather than a wrong one.
    else return undefined;
  }
  return terms.join(',');
}

/** A node's name and labels: all that eligibility reads. */
export function stripNode(raw: RawObject, intern: Interner): NodeInfo {
  const meta = metadataOf(raw);
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta.labels ?? {})) labels[intern.string(k)] = intern.string(v);
  return { name: meta.name ?? '', labels };
}

/** Whether two nodes are the same for eligibility. */
export function sameNode(a: NodeInfo, b: NodeInfo): boolean {
  if (a.name !== b.name) return false;
  const ka = Object.keys(a.labels);
  if (ka.length !== Object.keys(b.labels).length) return false;
  return ka.every((k) => a.labels[k] === b.labels[k]);
}

/**
 * The fields of each kind that hold its steady count, as managedFields paths: whoever
 * owns one of them after a decrease is who lowered the count.
 */
export const COUNT_FIELDS: ReadonlyMap<string, readonly (readonly string[])[]> = new Map([
  ['apps/Deployment', [['spec', 'replicas']]],
  ['apps/ReplicaSet', [['spec', 'replicas']]],
  ['apps/StatefulSet', [['spec', 'replicas']]],
  ['/ReplicationController', [['spec', 'replicas']]],
  ['batch/Job', [['spec', 'parallelism'], ['spec', 'completions'], ['spec', 'suspend']]],
  [
    'batch/CronJob',
    [['spec', 'suspend'], ['spec', 'jobTemplate', 'spec', 'parallelism'], ['spec', 'jobTemplate', 'spec', 'completions']],
  ],
  ['autoscaling/HorizontalPodAutoscaler', [['spec', 'maxReplicas']]],
]);

/** Longest justification kept per workload: a Scale's audit line quotes it, and the view's memory is bounded. */
const MAX_JUSTIFICATION = 1024;

function justificationOf(meta: RawMetadata): { justification?: string } {
  const annotations = meta.annotations;
  if (typeof annotations !== 'object' || annotations === null) return {};
  const text = annotations['replica-guard.io/justification'];
  return typeof text === 'string' && text.trim() !== '' ? { justification: text.slice(0, MAX_JUSTIFICATION) } : {};
}
