import type { Counter, Gauge } from 'prom-client';
import type { Logger } from 'pino';
import { pino } from 'pino';
import type { NodeInfo } from '../admission/node-eligibility.ts';
import { anyObjectShape, podSpecShape } from '../admission/object-shapes.ts';
import { builtInKind, type WorkloadKind } from '../admission/workload-kinds.ts';
import type { Clock } from '../clock.ts';
import type { FamilyTally } from '../core/family.ts';
import type { WorkloadRef, WorkloadSnapshot } from '../core/types.ts';
import type { WorkloadPod, WorkloadPods, WorkloadPodsReader } from '../load/workload-pods.ts';
import type { ClusterView } from './cluster-view.ts';
import type { FamilyQuery } from './family-aggregates.ts';
import { GoneUids } from './gone-uids.ts';
import type { KubeConnection } from './kube-http.ts';
import {
  COUNT_FIELDS,
  daemonSetCountInput,
  Interner,
  type OwnerFacts,
  type PodFacts,
  podSelectorOf,
  sameNode,
  stripNode,
  stripPod,
  stripWorkload,
  type TrackedOwnerKinds,
} from './kube-snapshot.ts';
import {
  ListGate,
  type ListWatchTuning,
  ListWatch,
  type ObjectEventType,
  type RawObject,
  type ReflectorSink,
  type ResourceId,
  type RestartReason,
} from './list-watch.ts';
import { KeyLists } from './key-lists.ts';
import { countWriter, LossDetector } from './loss-detector.ts';
import { ViewWorkloads } from './kube-workloads.ts';

/**
 * The cluster view against a real API server: one list+watch reflector per resource
 * (Deployments, ReplicaSets, StatefulSets, ReplicationControllers, Jobs, CronJobs,
 * DaemonSets, HorizontalPodAutoscalers, Pods, Nodes, and mapped custom resources), each
 * object stripped on arrival to what decisions read (kube-snapshot.ts) and indexed for the
 * family lookups (workload-index.ts). Lookups are synchronous and answer from memory.
 *
 * Readiness: {@link synced} turns true once every resource has been listed in full and
 * never turns false again. When the API is slow or down the cache ages instead, and
 * {@link staleness} says by how much; decisions on facts older than `view.maxStaleness`
 * treat them as unknown. Turning every replica unready at once would lock all agents out.
 */

/**
 * A custom resource that runs pods without a scale subresource (a RayCluster, say),
 * counted by paths. Paths are dotted; `[]` steps into every element of an array:
 * `spec.workerGroupSpecs[].replicas`.
 */
export interface CustomWorkloadMapping {
  readonly group: string;
  readonly version: string;
  /** Plural, as in the API path. */
  readonly resource: string;
  readonly kind: string;
  /** Fields whose values add up to the steady count. */
  readonly countPaths: readonly string[];
  /** The value of a count path that is absent; default 1, as for `spec.replicas`. */
  readonly defaultCount?: number | undefined;
  /** Instances run besides the counted ones (a RayCluster's head); default 0. */
  readonly fixedCount?: number | undefined;
  /** Pod templates (objects with a `spec`), for service accounts and fingerprints. */
  readonly podTemplatePaths: readonly string[];
}

/** Metrics the view keeps up to date; all optional, all the caller's prom-client objects. */
export interface KubeViewMetrics {
  /** `replica_guard_view_cache_age_seconds{resource}`: set by {@link KubeView.collect}. */
  readonly cacheAge?: Gauge<'resource'> | undefined;
  /** `replica_guard_view_objects{resource}`: set by {@link KubeView.collect}. */
  readonly objects?: Gauge<'resource'> | undefined;
  /** `replica_guard_view_watch_restarts_total{resource,reason}`. */
  readonly restarts?: Counter<'resource' | 'reason'> | undefined;
  /** `replica_guard_view_rejected_objects_total{resource}`: objects whose counted fields have a shape the guard does not accept. */
  readonly rejected?: Counter<'resource'> | undefined;
}

export interface KubeViewOptions {
  readonly connection: KubeConnection;
  readonly clock: Clock;
  readonly logger?: Logger | undefined;
  readonly tuning?: Partial<ListWatchTuning> | undefined;
  readonly random?: (() => number) | undefined;
  readonly metrics?: KubeViewMetrics | undefined;
  readonly customResources?: readonly CustomWorkloadMapping[] | undefined;
  readonly losses?: { readonly graceMs?: number; readonly settleMs?: number; readonly keep?: number } | undefined;
  /** LIST pages in flight at once across all resources; default 2 (see {@link ListGate}). */
  readonly listConcurrency?: number | undefined;
  /**
   * Past this staleness the load lookups ({@link KubeView.podsOf}, {@link KubeView.autoscalerOf})
   * answer "not known" (default 60 s): `view.maxStaleness`, as the decisions use it.
   */
  readonly maxStalenessMs?: number | undefined;
}

/** The HPA scaling a workload, as the hpa load source needs it (view-hpa-reader.ts). */
export interface ViewAutoscaler {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  /** `status.desiredReplicas`; undefined before the HPA controller first reconciled it. */
  readonly desiredReplicas: number | undefined;
}

/** One resource's cache, for gauges and diagnostics. */
export interface CacheState {
  /** `deployments.apps`, `pods`. */
  readonly resource: string;
  readonly synced: boolean;
  /** Milliseconds since the reflector last heard from the API; undefined before its first list. */
  readonly ageMs: number | undefined;
  readonly objects: number;
}

const BUILT_IN: readonly { readonly id: ResourceId; readonly role: 'workload' | 'pods' | 'nodes' }[] = [
  { id: { group: 'apps', version: 'v1', resource: 'deployments' }, role: 'workload' },
  { id: { group: 'apps', version: 'v1', resource: 'replicasets' }, role: 'workload' },
  { id: { group: 'apps', version: 'v1', resource: 'statefulsets' }, role: 'workload' },
  { id: { group: 'apps', version: 'v1', resource: 'daemonsets' }, role: 'workload' },
  { id: { group: '', version: 'v1', resource: 'replicationcontrollers' }, role: 'workload' },
  { id: { group: 'batch', version: 'v1', resource: 'jobs' }, role: 'workload' },
  { id: { group: 'batch', version: 'v1', resource: 'cronjobs' }, role: 'workload' },
  { id: { group: 'autoscaling', version: 'v2', resource: 'horizontalpodautoscalers' }, role: 'workload' },
  { id: { group: '', version: 'v1', resource: 'pods' }, role: 'pods' },
  { id: { group: '', version: 'v1', resource: 'nodes' }, role: 'nodes' },
];

/** Extra facts of an owner beyond its count; kept only when one is set, which few owners have. */
type OwnerExtra = Omit<OwnerFacts, 'steady'>;

const splitKey = (key: string): [string, string] => {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
};

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`missing ${what}`);
  return value;
}

/**
 * The list/watch-backed cluster view. Besides the family lookups it answers the load
 * sources from the same caches: a workload's pods with their CPU requests (the metrics-api
 * source) and the HPA that scales it (the hpa source, through view-hpa-reader.ts).
 */
export class KubeView implements ClusterView, WorkloadPodsReader {
  /** Losses and lowered counts seen in this view: subscribe with `onLoss` and `onCountLowered`. */
  readonly losses: LossDetector;

  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #metrics: KubeViewMetrics;
  readonly #reflectors: ListWatch[] = [];
  readonly #index = new ViewWorkloads();
  readonly #gone = new GoneUids();
  readonly #intern = new Interner();
  readonly #tracked: TrackedOwnerKinds;
  readonly #podKind: WorkloadKind;
  readonly #dsKind: WorkloadKind;
  readonly #ownerExtra = new Map<string, OwnerExtra>();
  readonly #daemonSets = new Map<string, RawObject>();
  readonly #pods = new Map<string, PodFacts>();
  /** Pod keys by their controller's UID: a workload's pods without a scan of every pod. */
  readonly #podsByOwner = new KeyLists();
  /** Pod selectors of top owners that have one (podSelectorOf), by UID: only to narrow metrics lists. */
  readonly #selectors = new Map<string, string>();
  /** HPAs' `status.desiredReplicas` by UID, when reported. */
  readonly #hpaDesired = new Map<string, number>();
  readonly #maxStalenessMs: number;
  readonly #nodes = new Map<string, NodeInfo>();
  #nodeList: readonly NodeInfo[] | undefined;
  #nodesReflector: ListWatch | undefined;
  #recountNeeded = false;
  #recountTimer: NodeJS.Timeout | undefined;
  #synced = false;
  #started = false;
  #stopped = false;
  readonly #syncedPromise: Promise<void>;
  #resolveSynced: (() => void) | undefined;

  constructor(options: KubeViewOptions) {
    this.#clock = options.clock;
    this.#logger = options.logger ?? pino({ enabled: false });
    this.#metrics = options.metrics ?? {};
    this.#maxStalenessMs = options.maxStalenessMs ?? 60_000;
    this.#podKind = required(builtInKind('', 'pods'), 'the Pod kind');
    this.#dsKind = required(builtInKind('apps', 'daemonsets'), 'the DaemonSet kind');
    const custom = options.customResources ?? [];
    this.#tracked = new Set([
      'apps/Deployment',
      'apps/ReplicaSet',
      'apps/StatefulSet',
      'apps/DaemonSet',
      '/ReplicationController',
      'batch/Job',
      'batch/CronJob',
      // A static pod's mirror is controlled by its Node: the kubelet runs it, not a workload.
      '/Node',
      ...custom.map((c) => `${c.group}/${c.kind}`),
    ]);
    this.losses = new LossDetector({
      clock: options.clock,
      logger: this.#logger,
      lookups: { owner: (uid) => this.#ownerFacts(uid), topOwner: (uid) => this.#topOwner(uid) },
      ...options.losses,
    });
    this.#syncedPromise = new Promise((resolve) => {
      this.#resolveSynced = resolve;
    });

    const listGate = new ListGate(options.listConcurrency ?? 2);
    const reflect = (id: ResourceId, sink: ReflectorSink): ListWatch => {
      const label = id.group === '' ? id.resource : `${id.resource}.${id.group}`;
      const lw = new ListWatch({
        connection: options.connection,
        resource: id,
        sink,
        clock: options.clock,
        logger: this.#logger,
        tuning: options.tuning,
        random: options.random,
        onRestart: (reason: RestartReason) => this.#metrics.restarts?.inc({ resource: label, reason }),
        listGate,
      });
      this.#reflectors.push(lw);
      return lw;
    };
    for (const { id, role } of BUILT_IN) {
      if (role === 'pods') reflect(id, { apply: (type, o, key) => this.#applyPod(type, o, key) });
      else if (role === 'nodes') this.#nodesReflector = reflect(id, { apply: (type, o, key) => this.#applyNode(type, o, key) });
      else {
        const kind = required(builtInKind(id.group, id.resource), id.resource);
        reflect(id, { apply: (type, o, key) => this.#applyWorkload(kind, type, o, key) });
      }
    }
    for (const mapping of custom) {
      const kind = mappedKind(mapping);
      reflect(mapping, { apply: (type, o, key) => this.#applyWorkload(kind, type, o, key) });
    }
  }

  /** Starts every reflector. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (const r of this.#reflectors) r.start();
    this.#nodesReflector?.whenSynced().then(() => this.#nodesChanged(), () => undefined);
    Promise.all(this.#reflectors.map((r) => r.whenSynced())).then(
      () => {
        if (this.#stopped) return;
        this.#recount();
        this.#synced = true;
        this.#resolveSynced?.();
        this.#logger.info({ workloads: this.#index.size, pods: this.#pods.size, nodes: this.#nodes.size }, 'cluster view synced');
      },
      () => undefined,
    );
  }

  /** Stops every reflector and timer. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#recountTimer) clearTimeout(this.#recountTimer);
    this.#recountTimer = undefined;
    this.losses.stop();
    await Promise.all(this.#reflectors.map((r) => r.stop()));
  }

  /** True once every resource was listed in full; never false again (readiness). */
  synced(): boolean {
    return this.#synced;
  }

  /** Resolves at the first full sync. */
  whenSynced(): Promise<void> {
    return this.#syncedPromise;
  }

  /** Undefined before the first full sync; then the age of the least recently heard-from resource. */
  staleness(nowMs: number): number | undefined {
    if (!this.#synced) return undefined;
    let oldest = 0;
    for (const r of this.#reflectors) {
      const last = r.lastActivityMs;
      if (last !== undefined) oldest = Math.max(oldest, nowMs - last);
    }
    return oldest;
  }

  /** Each resource's cache: synced, age, objects. */
  caches(nowMs: number): CacheState[] {
    return this.#reflectors.map((r) => {
      const last = r.lastActivityMs;
      return { resource: r.label, synced: r.synced, ageMs: last === undefined ? undefined : nowMs - last, objects: r.objectCount };
    });
  }

  /** Sets the cache-age and object gauges; call it from the gauges' prom-client `collect`. */
  collect(): void {
    const { cacheAge, objects } = this.#metrics;
    for (const c of this.caches(this.#clock.monotonicMs())) {
      if (c.ageMs !== undefined) cacheAge?.set({ resource: c.resource }, c.ageMs / 1000);
      objects?.set({ resource: c.resource }, c.objects);
    }
  }

  // ---- ClusterView ------------------------------------------------------------------------

  workload(group: string, kind: string, namespace: string, name: string): WorkloadSnapshot | undefined {
    this.#recountIfNeeded();
    return this.#index.get(group, kind, namespace, name);
  }

  workloadByUid(uid: string): WorkloadSnapshot | undefined {
    this.#recountIfNeeded();
    return this.#index.byUid(uid);
  }

  isGone(uid: string): boolean {
    return this.#gone.has(uid);
  }

  runningAs(serviceAccountName: string): Iterable<WorkloadSnapshot> {
    this.#recountIfNeeded();
    return this.#index.runningAs(serviceAccountName);
  }

  withFingerprint(key: string): Iterable<WorkloadSnapshot> {
    this.#recountIfNeeded();
    return this.#index.withFingerprint(key);
  }

  scalerOf(ref: WorkloadRef): WorkloadSnapshot | undefined {
    this.#recountIfNeeded();
    return this.#index.scalerOf(ref);
  }

  family(query: FamilyQuery): FamilyTally {
    this.#recountIfNeeded();
    return this.#index.family(query);
  }

  nodes(): readonly NodeInfo[] | undefined {
    if (!this.#nodesReflector?.synced) return undefined;
    this.#nodeList ??= [...this.#nodes.values()];
    return this.#nodeList;
  }

  /** Pods kept (for tests and the benchmark). */
  get podCount(): number {
    return this.#pods.size;
  }

  // ---- load lookups ---------------------------------------------------------------------------

  /**
   * The pods a workload runs now (not deleting, not Succeeded or Failed), found through
   * their controller references down from the workload (a Deployment's ReplicaSets' pods),
   * with their CPU requests. Undefined before the first sync, past `maxStalenessMs`, and
   * for a kind the view does not watch (a `scaleResources` entry such as an Argo Rollout):
   * its pods cannot be known, which is not the same as having none. A workload of a
   * watched kind that the view does not have runs no pods: a new workload, whose need is
   * `need.min`.
   */
  podsOf(ref: WorkloadRef): WorkloadPods | undefined {
    if (!this.#fresh()) return undefined;
    if (!this.#tracked.has(`${ref.group}/${ref.kind}`) || ref.kind === 'Node') return undefined;
    const workload = this.#index.get(ref.group, ref.kind, ref.namespace, ref.name);
    const uid = workload?.ref.uid;
    if (uid === undefined) return { namespace: ref.namespace, labelSelector: '', pods: [] };
    const pods: WorkloadPod[] = [];
    const visit = (ownerUid: string, depth: number): void => {
      for (const key of this.#podsByOwner.get(ownerUid)) {
        const facts = this.#pods.get(key);
        if (!facts || facts.deleting || facts.phase === 'Succeeded' || facts.phase === 'Failed') continue;
        const millis = facts.cpuRequestMillis;
        pods.push({ name: splitKey(key)[1], cpuRequestCores: millis === undefined ? undefined : millis / 1000 });
      }
      // As deep as #topOwner walks up.
      if (depth >= 8) return;
      for (const child of this.#index.ownedBy(ownerUid)) if (child.ref.uid) visit(child.ref.uid, depth + 1);
    };
    visit(uid, 0);
    return { namespace: ref.namespace, labelSelector: this.#selectors.get(uid) ?? '', pods };
  }

  /**
   * The HPA whose scaleTargetRef names the workload: null when none does; undefined before
   * the first sync or past `maxStalenessMs`.
   */
  autoscalerOf(ref: WorkloadRef): ViewAutoscaler | null | undefined {
    if (!this.#fresh()) return undefined;
    const hpa = this.#index.scalerOf(ref);
    if (!hpa) return null;
    const uid = hpa.ref.uid;
    return { namespace: hpa.ref.namespace, name: hpa.ref.name, uid, desiredReplicas: uid ? this.#hpaDesired.get(uid) : undefined };
  }

  #fresh(): boolean {
    const staleness = this.staleness(this.#clock.monotonicMs());
    return staleness !== undefined && staleness <= this.#maxStalenessMs;
  }

  // ---- workloads ------------------------------------------------------------------------------

  #applyWorkload(kind: WorkloadKind, type: ObjectEventType, raw: RawObject, key: string): void {
    const [namespace, name] = splitKey(key);
    const prev = this.#index.get(kind.group, kind.kind, namespace, name);
    if (type === 'DELETED') {
      if (prev) {
        if (prev.ref.uid) this.#gone.mark(prev.ref.uid);
        this.#removeWorkload(prev, key);
      }
      return;
    }
    let stripped: ReturnType<typeof stripWorkload>;
    try {
      stripped = stripWorkload(kind, raw, this.nodes(), this.#tracked, this.#intern);
    } catch (err) {
      // The apiserver validated it, so only a schema stricter than the API gets here: say so, keep nothing wrong.
      this.#metrics.rejected?.inc({ resource: kind.resource });
      this.#logger.warn({ kind: kind.kind, namespace, name, err: err instanceof Error ? err.message : String(err) }, 'object not counted');
      if (prev) this.#removeWorkload(prev, key);
      return;
    }
    const next = stripped.snapshot;
    const uid = next.ref.uid;
    const samePrev = prev && prev.ref.uid === uid ? prev : undefined;
    if (prev && !samePrev) {
      // The same name with a new UID: the old object was deleted while the watch looked away.
      if (prev.ref.uid && uid) this.#gone.mark(prev.ref.uid);
      this.#removeWorkload(prev, key);
    }
    const before = samePrev && uid ? this.#ownerFacts(uid) : undefined;

    this.#index.set(next);
    if (uid) {
      // Only top owners are asked for their pods' metrics: a Deployment's old ReplicaSets
      // (ten by default) would otherwise each keep a copy of its selector.
      const selector = next.controllerUid === undefined ? podSelectorOf(kind, raw) : undefined;
      if (selector === undefined) this.#selectors.delete(uid);
      else this.#selectors.set(uid, selector);
      const desired = kind.kind === 'HorizontalPodAutoscaler' ? desiredReplicasOf(raw) : undefined;
      if (desired === undefined) this.#hpaDesired.delete(uid);
      else this.#hpaDesired.set(uid, desired);
      const { steady: _steady, ...extra } = stripped.owner;
      if (extra.terminal || extra.deleting || extra.revision !== undefined || extra.rollingOut) this.#ownerExtra.set(uid, extra);
      else this.#ownerExtra.delete(uid);
    }
    if (kind === this.#dsKind) this.#daemonSets.set(key, daemonSetCountInput(raw));
    if (stripped.uncounted) this.#recountNeeded = true;

    if (!samePrev || !uid) return;
    const from = samePrev.count.steady;
    const to = next.count.steady;
    const fields = COUNT_FIELDS.get(`${kind.group}/${kind.kind}`) ?? customCountFields(kind);
    if (to < from && fields) {
      const managed = (raw.metadata as { managedFields?: unknown } | undefined)?.managedFields;
      this.losses.countLowered(uid, next.ref, from, to, countWriter(managed, fields), next.controllerUid);
    }
    this.losses.ownerChanged(uid, before, stripped.owner);
  }

  #removeWorkload(prev: WorkloadSnapshot, key: string): void {
    this.#index.delete(prev.ref);
    if (prev.ref.kind === 'DaemonSet' && prev.ref.group === 'apps') this.#daemonSets.delete(key);
    if (prev.ref.uid) {
      this.losses.ownerChanged(prev.ref.uid, this.#ownerFacts(prev.ref.uid), undefined);
      this.#ownerExtra.delete(prev.ref.uid);
      this.#selectors.delete(prev.ref.uid);
      this.#hpaDesired.delete(prev.ref.uid);
    }
  }

  #ownerFacts(uid: string): OwnerFacts | undefined {
    const snapshot = this.#index.byUid(uid);
    if (!snapshot) return undefined;
    const extra = this.#ownerExtra.get(uid);
    return { steady: snapshot.count.steady, terminal: false, deleting: false, ...extra };
  }

  /** The top owner a pod with this controller counts toward (walks ReplicaSet → Deployment, Job → CronJob). */
  #topOwner(uid: string): WorkloadSnapshot | undefined {
    let current = this.#index.byUid(uid);
    for (let depth = 0; current?.controllerUid !== undefined && depth < 8; depth++) {
      const parent = this.#index.byUid(current.controllerUid);
      if (!parent) break;
      current = parent;
    }
    return current;
  }

  // ---- DaemonSets follow the nodes ------------------------------------------------------------

  #nodesChanged(): void {
    this.#nodeList = undefined;
    this.#recountNeeded = true;
    // Off the request path soon, and lazily on the next lookup if one comes first.
    if (this.#recountTimer || this.#stopped) return;
    this.#recountTimer = setTimeout(() => {
      this.#recountTimer = undefined;
      this.#recountIfNeeded();
    }, 50);
    this.#recountTimer.unref();
  }

  #recountIfNeeded(): void {
    if (this.#recountNeeded) this.#recount();
  }

  #recount(): void {
    const nodes = this.nodes();
    if (nodes === undefined) return;
    this.#recountNeeded = false;
    for (const [key, input] of this.#daemonSets) {
      const [namespace, name] = splitKey(key);
      const prev = this.#index.get('apps', 'DaemonSet', namespace, name);
      if (!prev) continue;
      const counted = this.#dsKind.count(input as never, { nodes });
      if (!('count' in counted)) continue;
      if (counted.count.steady === prev.count.steady && counted.count.extra.type === prev.count.extra.type) continue;
      const uid = prev.ref.uid;
      const before = uid ? this.#ownerFacts(uid) : undefined;
      this.#index.set({ ...prev, count: counted.count });
      if (uid && before) this.losses.ownerChanged(uid, before, { ...before, steady: counted.count.steady });
    }
  }

  #applyNode(type: ObjectEventType, raw: RawObject, key: string): void {
    const name = splitKey(key)[1];
    if (type === 'DELETED') {
      if (this.#nodes.delete(name)) this.#nodesChanged();
      return;
    }
    const next = stripNode(raw, this.#intern);
    const prev = this.#nodes.get(name);
    // Nodes report status every few seconds; only a change of name or labels changes counts.
    if (prev && sameNode(prev, next)) return;
    this.#nodes.set(name, next);
    if (this.#nodesReflector?.synced) this.#nodesChanged();
  }

  // ---- pods --------------------------------------------------------------------------------------

  #applyPod(type: ObjectEventType, raw: RawObject, key: string): void {
    const [namespace, name] = splitKey(key);
    const prev = this.#pods.get(key);
    if (type === 'DELETED') {
      let last = prev;
      let bare = this.#index.get('', 'Pod', namespace, name);
      if (raw.metadata?.uid) {
        try {
          const stripped = stripPod(this.#podKind, raw, this.#tracked, this.#intern);
          last = stripped.facts;
          bare = stripped.bare ?? bare;
        } catch {
          // Keep the last state the view had.
        }
      }
      this.#pods.delete(key);
      this.#unlinkPod(key, prev);
      this.#index.delete(podRef(namespace, name));
      if (last && this.#synced) this.losses.podChanged(namespace, name, prev, last, true, bare);
      return;
    }
    let stripped: ReturnType<typeof stripPod>;
    try {
      stripped = stripPod(this.#podKind, raw, this.#tracked, this.#intern);
    } catch (err) {
      this.#metrics.rejected?.inc({ resource: 'pods' });
      this.#logger.warn({ kind: 'Pod', namespace, name, err: err instanceof Error ? err.message : String(err) }, 'object not counted');
      return;
    }
    const next = stripped.facts;
    let before = prev;
    if (prev && prev.uid !== next.uid) {
      // The same name, a new pod (a StatefulSet's): the old one is gone.
      if (this.#synced) this.losses.podChanged(namespace, name, prev, prev, true, undefined);
      before = undefined;
    }
    this.#pods.set(key, next);
    if (prev?.ownerUid !== next.ownerUid) {
      this.#unlinkPod(key, prev);
      if (next.ownerUid !== undefined) this.#podsByOwner.add(next.ownerUid, key);
    }
    // A bare pod that finished runs nothing any more.
    if (stripped.bare && next.phase !== 'Succeeded' && next.phase !== 'Failed') this.#index.set(stripped.bare);
    else this.#index.delete(podRef(namespace, name));
    if (this.#synced) this.losses.podChanged(namespace, name, before, next, false, stripped.bare);
  }

  #unlinkPod(key: string, facts: PodFacts | undefined): void {
    const owner = facts?.ownerUid;
    if (owner !== undefined) this.#podsByOwner.remove(owner, key);
  }
}

/** An HPA's `status.desiredReplicas`, when the controller has reported a sound one. */
function desiredReplicasOf(raw: RawObject): number | undefined {
  const desired = (raw.status as { desiredReplicas?: unknown } | undefined)?.desiredReplicas;
  return typeof desired === 'number' && Number.isInteger(desired) && desired >= 0 ? desired : undefined;
}

function podRef(namespace: string, name: string): WorkloadRef {
  return { group: '', kind: 'Pod', namespace, name };
}

const customFields = new WeakMap<WorkloadKind, readonly (readonly string[])[]>();

function customCountFields(kind: WorkloadKind): readonly (readonly string[])[] | undefined {
  return customFields.get(kind);
}

/** Reads a dotted path with `[]` steps; returns every value found. */
export function readPaths(object: unknown, path: string): unknown[] {
  let current: unknown[] = [object];
  for (const part of path.split('.')) {
    const each = part.endsWith('[]');
    const field = each ? part.slice(0, -2) : part;
    const next: unknown[] = [];
    for (const value of current) {
      if (typeof value !== 'object' || value === null) continue;
      const child = (value as Record<string, unknown>)[field];
      if (each) {
        if (Array.isArray(child)) next.push(...(child as unknown[]));
      } else if (child !== undefined) {
        next.push(child);
      }
    }
    current = next;
  }
  return current;
}

/**
 * A WorkloadKind for a mapped custom resource, so that it goes through the same path as
 * the built-in kinds: count = fixed + the sum of its count paths (a missing one counts
 * `defaultCount`), pod templates from their paths.
 */
export function mappedKind(mapping: CustomWorkloadMapping): WorkloadKind {
  const templateSpecs = (o: unknown) =>
    mapping.podTemplatePaths.flatMap((p) =>
      readPaths(o, `${p}.spec`).flatMap((spec) => {
        const parsed = podSpecShape.safeParse(spec);
        return parsed.success ? [{ field: `${p}.spec`, spec: parsed.data }] : [];
      }),
    );
  const kind: WorkloadKind = {
    group: mapping.group,
    resource: mapping.resource,
    kind: mapping.kind,
    isWorkload: true,
    scalable: false,
    // Mapped objects are read by path; only their metadata must have the usual shape.
    shape: anyObjectShape,
    count(o: unknown) {
      let steady = mapping.fixedCount ?? 0;
      for (const path of mapping.countPaths) {
        const values = readPaths(o, path);
        if (values.length === 0 && !path.includes('[]')) steady += mapping.defaultCount ?? 1;
        for (const v of values) steady += typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0;
      }
      return { count: { steady, extra: { type: 'none' } } };
    },
    podTemplates: templateSpecs,
    clamp: () => null,
  };
  customFields.set(
    kind,
    mapping.countPaths.filter((p) => !p.includes('[]')).map((p) => p.split('.')),
  );
  return kind;
}
