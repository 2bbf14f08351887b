import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AccessRequest, type AccessRule, allowedByRules } from './access-rules.ts';
import { compileLabelSelector } from './label-selector.ts';

export type { AccessRequest, AccessRule } from './access-rules.ts';

/**
 * A small stand-in for the kube-apiserver, which cannot run here. It serves real HTTP
 * and models only what replica-guard relies on, the way the real server behaves:
 *
 * - one resourceVersion counter for all objects, as etcd's revision: every write bumps it,
 *   and an object's `metadata.resourceVersion` is the revision of its last write;
 * - LIST with `limit` and `continue`: pages are cut from a snapshot taken at the first page,
 *   the list's `metadata.resourceVersion` is that snapshot's, `metadata.continue` is opaque
 *   and expires (HTTP 410 `Expired`) once the history it refers to is compacted;
 * - WATCH (`?watch=true&resourceVersion=N`) streams newline-delimited JSON events with
 *   resourceVersion > N; a resourceVersion older than the retained history gets a single
 *   `ERROR` event carrying a 410 `Expired` Status (HTTP 200), as the real server sends;
 *   `allowWatchBookmarks=true` adds periodic `BOOKMARK` events; `timeoutSeconds` ends the
 *   stream cleanly;
 * - the `scale` subresource of Deployments, StatefulSets, ReplicaSets and
 *   ReplicationControllers (autoscaling/v1 Scale, GET and PUT);
 * - an immutable ConfigMap (`immutable: true`) refuses a change of its data with 422;
 * - CREATE (201, or 409 `AlreadyExists`), GET (404 `NotFound`), UPDATE with
 *   compare-and-swap on `metadata.resourceVersion` (409 `Conflict` when stale; an update
 *   without a resourceVersion is unconditional, as in the real API), DELETE;
 * - a ConfigMap whose data (values of `data` plus decoded `binaryData`) exceeds 1 MiB is
 *   refused on CREATE and UPDATE with 422 `Invalid`, as the real validation does;
 * - errors as `kind: Status` objects with `code`, `reason` and `message`;
 * - pages are cut from objects ordered by namespace/name in code-unit order, as etcd orders
 *   keys by bytes; a snapshot is computed once and reused by the pages that continue it;
 * - custom resources declared in the options are served like the built-in ones;
 * - `metrics.k8s.io/v1beta1` PodMetrics, standing in for metrics-server behind the API
 *   aggregation layer: LIST per namespace (`labelSelector` applied to the pods' labels,
 *   equality- and set-based, as metrics-server does; no pagination, which metrics-server
 *   ignores) and GET by name, in metrics-server's shape (`containers[].usage.cpu`,
 *   `timestamp`, `window`, the pod's labels). A pod appears once a test gives it a usage
 *   ({@link FakeApiServer.setPodUsage}) and only while the pod exists, as metrics-server
 *   reports only pods it scraped. metrics-server being down is an interceptor answering
 *   503 for `/apis/metrics.k8s.io/`, which is what the aggregator answers then;
 * - `authorization.k8s.io/v1` SubjectAccessReview CREATE (201), answered from rules a
 *   test configures ({@link FakeApiServer.setAccessRules}, RBAC-like: a union of grants to
 *   users and groups, see access-rules.ts). Only `spec.resourceAttributes` with
 *   `spec.user` and `spec.groups` is read, and only `status.allowed` is answered: no
 *   `denied`, `reason` or `evaluationError`, no `extra` or `uid`, no non-resource URLs.
 *
 * Test controls (not part of the API): seed and change objects directly, compact the
 * history, make watches hang without closing (a stalled connection), count requests,
 * delay every request (a real apiserver and etcd take milliseconds per write, which is
 * what makes concurrent writers overlap and conflict), intercept requests (to answer an
 * error such as a 500 or a 429 with Retry-After, or to act between two pages of a list),
 * set pods' CPU usage and the access rules, read the access reviews asked.
 * Not modelled: label and field selectors on the built-in resources, server-side apply,
 * admission, RBAC beyond the SubjectAccessReview answer (requests are never refused for
 * lack of permission), and `metadata.managedFields`, which the real server maintains:
 * tests that need them write them into the objects they put.
 */

/** A Kubernetes object as stored: only metadata is interpreted. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** A resource the fake serves. */
export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** The resources this fake serves. */
export const FAKE_RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true },
  { group: '', version: 'v1', resource: 'replicationcontrollers', kind: 'ReplicationController', namespaced: true },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false },
  { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true },
  { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true },
  { group: 'apps', version: 'v1', resource: 'replicasets', kind: 'ReplicaSet', namespaced: true },
  { group: 'apps', version: 'v1', resource: 'statefulsets', kind: 'StatefulSet', namespaced: true },
  { group: 'apps', version: 'v1', resource: 'daemonsets', kind: 'DaemonSet', namespaced: true },
  { group: 'batch', version: 'v1', resource: 'jobs', kind: 'Job', namespaced: true },
  { group: 'batch', version: 'v1', resource: 'cronjobs', kind: 'CronJob', namespaced: true },
  { group: 'autoscaling', version: 'v2', resource: 'horizontalpodautoscalers', kind: 'HorizontalPodAutoscaler', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true },
];

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface StoredEvent {
  readonly rv: number;
  readonly resource: string;
  readonly type: EventType;
  readonly object: KubeObject;
}

interface Watcher {
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly res: ServerResponse;
  readonly bookmarks: boolean;
}

/** Options of the fake. */
export interface FakeApiServerOptions {
  /** Events kept for watches and continue tokens; older ones are compacted away. */
  readonly historyLimit?: number;
  /** Interval of BOOKMARK events on watches that ask for them. */
  readonly bookmarkIntervalMs?: number;
  /** Custom resources to serve besides {@link FAKE_RESOURCES}. */
  readonly extraResources?: readonly ResourceType[];
}

/** A request as an interceptor sees it. */
export interface InterceptedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly watch: boolean;
}

/** What an interceptor answers instead of the API: an error status, with an optional Retry-After. */
export interface InterceptAnswer {
  readonly status: number;
  readonly reason?: string;
  readonly retryAfterSeconds?: number;
}

/** Sees every request first; returning an answer replaces the API's. */
export type Interceptor = (req: InterceptedRequest) => InterceptAnswer | undefined;

/** A running fake API server. */
export class FakeApiServer {
  readonly #server: Server;
  readonly #objects = new Map<string, Map<string, KubeObject>>();
  #events: StoredEvent[] = [];
  #revision = 1;
  /** Events with rv <= this are compacted: watches and continues from before it get 410. */
  #compactedThrough = 0;
  #uidCounter = 0;
  readonly #watchers = new Set<Watcher>();
  #stalled = false;
  #latencyMs = 0;
  readonly #historyLimit: number;
  readonly #bookmarkTimer: NodeJS.Timeout;
  readonly #resources: readonly ResourceType[];
  #interceptor: Interceptor | undefined;
  /** The last snapshot listed per resource and namespace: the pages that continue it reuse it. */
  readonly #snapshots = new Map<string, { readonly rv: number; readonly items: KubeObject[] }>();
  /** Requests by `METHOD path-without-query`, for assertions on what the client did. */
  readonly requests: string[] = [];
  /** CPU usage per pod (`namespace/name`), container name → quantity: what metrics-server would report. */
  readonly #podUsage = new Map<string, Readonly<Record<string, string>>>();
  #accessRules: readonly AccessRule[] = [];
  /** Every SubjectAccessReview asked, as read, in order. */
  readonly accessReviews: AccessRequest[] = [];

  private constructor(server: Server, options: FakeApiServerOptions) {
    this.#server = server;
    this.#historyLimit = options.historyLimit ?? 10_000;
    this.#resources = [...FAKE_RESOURCES, ...(options.extraResources ?? [])];
    for (const r of this.#resources) this.#objects.set(r.resource, new Map());
    this.#bookmarkTimer = setInterval(() => this.#sendBookmarks(), options.bookmarkIntervalMs ?? 1000);
    this.#bookmarkTimer.unref();
  }

  /** Starts the fake on an ephemeral loopback port. */
  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    let fake: FakeApiServer | undefined;
    const server = createServer((req, res) => {
      const self = fake;
      if (!self) return;
      const latency = self.#latencyMs;
      if (latency > 0) setTimeout(() => self.#handle(req, res), latency);
      else self.#handle(req, res);
    });
    fake = new FakeApiServer(server, options);
    await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', () => resolveListen()));
    return fake;
  }

  /** The base URL, e.g. `http://127.0.0.1:34567`. */
  get url(): string {
    const address = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}`;
  }

  /** The current revision: the resourceVersion of the latest write. */
  get revision(): number {
    return this.#revision;
  }

  /** Open watch connections. */
  get openWatches(): number {
    return this.#watchers.size;
  }

  async close(): Promise<void> {
    clearInterval(this.#bookmarkTimer);
    for (const w of this.#watchers) w.res.destroy();
    this.#watchers.clear();
    this.#server.closeAllConnections();
    await new Promise<void>((resolveClose) => this.#server.close(() => resolveClose()));
  }

  // ---- test controls -------------------------------------------------------------------

  /** Creates or replaces an object directly, as another client would; returns the stored copy. */
  put(resource: string, object: KubeObject): KubeObject {
    const type = this.#type(resource);
    const store = this.#store(resource);
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    const existing = store.get(key);
    const stored = this.#stamp(type, object, existing?.metadata.uid);
    store.set(key, stored);
    this.#record(resource, existing ? 'MODIFIED' : 'ADDED', stored);
    return structuredClone(stored);
  }

  /** Deletes an object directly; returns whether it existed. */
  remove(resource: string, namespace: string | undefined, name: string): boolean {
    const store = this.#store(resource);
    const existing = store.get(keyOf(namespace, name));
    if (!existing) return false;
    store.delete(keyOf(namespace, name));
    this.#revision++;
    const gone = structuredClone(existing);
    gone.metadata.resourceVersion = String(this.#revision);
    this.#record(resource, 'DELETED', gone);
    return true;
  }

  /** Reads an object as stored. */
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.#store(resource).get(keyOf(namespace, name));
    return o && structuredClone(o);
  }

  /** Forgets every event so far: watches and continue tokens from before now get 410. */
  compact(): void {
    this.#compactedThrough = this.#revision;
    this.#events = [];
  }

  /** While stalled, watches stay open but receive nothing (no events, no bookmarks). */
  stallWatches(stalled: boolean): void {
    this.#stalled = stalled;
  }

  /** Delays the handling of every later request by `ms` (0: none), in arrival order. */
  setLatency(ms: number): void {
    this.#latencyMs = ms;
  }

  /** Sees every request before the API does; an answer it returns replaces the API's. `undefined` removes it. */
  intercept(interceptor: Interceptor | undefined): void {
    this.#interceptor = interceptor;
  }

  /**
   * Sets the CPU usage metrics-server reports for a pod, per container (`{ app: '250m' }`);
   * undefined: none (a pod not scraped yet). Reported only while the pod exists.
   */
  setPodUsage(namespace: string, name: string, cpu: Readonly<Record<string, string>> | undefined): void {
    if (cpu === undefined) this.#podUsage.delete(keyOf(namespace, name));
    else this.#podUsage.set(keyOf(namespace, name), { ...cpu });
  }

  /** Replaces the rules SubjectAccessReviews are answered from (none: everything is denied). */
  setAccessRules(rules: readonly AccessRule[]): void {
    this.#accessRules = [...rules];
  }

  /** Ends every open watch, as the apiserver does on restart or when a timeout passes. */
  dropWatches(): void {
    for (const w of this.#watchers) w.res.end();
    this.#watchers.clear();
  }

  // ---- HTTP --------------------------------------------------------------------------------

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const isWatch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    this.requests.push(`${req.method} ${url.pathname}${url.searchParams.get('watch') ? '?watch' : ''}`);
    const answer = this.#interceptor?.({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, watch: isWatch });
    if (answer) {
      if (answer.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(answer.retryAfterSeconds));
      return sendStatus(res, answer.status, answer.reason ?? 'InternalError', `injected ${answer.status}`);
    }
    const route = parsePath(url.pathname);
    if (!route) return sendStatus(res, 404, 'NotFound', `no such path ${url.pathname}`);
    if (route.group === 'metrics.k8s.io' && route.version === 'v1beta1' && route.resource === 'pods' && req.method === 'GET') {
      return this.#podMetrics(route, url.searchParams, res);
    }
    if (route.group === 'authorization.k8s.io' && route.version === 'v1' && route.resource === 'subjectaccessreviews') {
      if (req.method !== 'POST' || route.name !== undefined || route.namespace !== undefined) {
        return sendStatus(res, 405, 'MethodNotAllowed', 'subjectaccessreviews only take a cluster-wide POST');
      }
      readBody(req)
        .then((body) => this.#accessReview(body, res))
        .catch((err: unknown) => sendStatus(res, 400, 'BadRequest', String(err)));
      return;
    }
    const type = this.#resources.find(
      (r) => r.group === route.group && r.version === route.version && r.resource === route.resource,
    );
    if (!type) return sendStatus(res, 404, 'NotFound', `the server could not find the requested resource ${url.pathname}`);

    const method = req.method ?? 'GET';
    if (route.subresource !== undefined) {
      if (route.subresource !== 'scale' || !SCALABLE.has(type.resource) || route.name === undefined) {
        return sendStatus(res, 404, 'NotFound', `the server could not find the requested resource ${url.pathname}`);
      }
      const name = route.name;
      if (method === 'GET') return this.#scale(type, route.namespace, name, undefined, res);
      if (method === 'PUT') {
        readBody(req)
          .then((body) => this.#scale(type, route.namespace, name, body, res))
          .catch((err: unknown) => sendStatus(res, 400, 'BadRequest', String(err)));
        return;
      }
      return sendStatus(res, 405, 'MethodNotAllowed', `${method} is not supported on scale`);
    }
    if (method === 'GET' && route.name === undefined) {
      if (isWatch) {
        return this.#watch(type, route.namespace, url.searchParams, res);
      }
      return this.#list(type, route.namespace, url.searchParams, res);
    }
    if (method === 'GET' && route.name !== undefined) {
      const o = this.#store(type.resource).get(keyOf(route.namespace, route.name));
      if (!o) return sendStatus(res, 404, 'NotFound', `${type.resource} "${route.name}" not found`);
      return sendJson(res, 200, o);
    }
    if (method === 'DELETE' && route.name !== undefined) {
      if (!this.remove(type.resource, route.namespace, route.name)) {
        return sendStatus(res, 404, 'NotFound', `${type.resource} "${route.name}" not found`);
      }
      return sendJson(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success', code: 200 });
    }
    if (method === 'POST' || method === 'PUT') {
      readBody(req)
        .then((body) => (method === 'POST' ? this.#create(type, route.namespace, body, res) : this.#update(type, route, body, res)))
        .catch((err: unknown) => sendStatus(res, 400, 'BadRequest', String(err)));
      return;
    }
    sendStatus(res, 405, 'MethodNotAllowed', `${method} is not supported here`);
  }

  /**
   * The scale subresource of a scalable workload, as autoscaling/v1 Scale: GET reads
   * `spec.replicas` (and `status.replicas`); PUT sets the parent's `spec.replicas`, with
   * compare-and-swap on the parent's resourceVersion when the Scale carries one.
   */
  #scale(type: ResourceType, namespace: string | undefined, name: string, body: KubeObject | undefined, res: ServerResponse): void {
    const store = this.#store(type.resource);
    const existing = store.get(keyOf(namespace, name));
    if (!existing) return sendStatus(res, 404, 'NotFound', `${type.resource}.${type.group} "${name}" not found`);
    let current = existing;
    if (body !== undefined) {
      const expected = body.metadata?.resourceVersion;
      if (expected !== undefined && expected !== existing.metadata.resourceVersion) {
        return sendStatus(res, 409, 'Conflict', `Operation cannot be fulfilled on ${type.resource}.${type.group} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
      }
      const replicas = (body.spec as { replicas?: unknown } | undefined)?.replicas ?? 0;
      if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
        return sendStatus(res, 422, 'Invalid', `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`);
      }
      const next = structuredClone(existing);
      next.spec = { ...((next.spec as object | undefined) ?? {}), replicas };
      current = this.#stamp(type, next, existing.metadata.uid);
      store.set(keyOf(namespace, name), current);
      this.#record(type.resource, 'MODIFIED', current);
    }
    sendJson(res, 200, {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name, namespace, uid: current.metadata.uid, resourceVersion: current.metadata.resourceVersion },
      spec: { replicas: (current.spec as { replicas?: number } | undefined)?.replicas ?? 1 },
      status: { replicas: (current.status as { replicas?: number } | undefined)?.replicas ?? 0 },
    });
  }

  #create(type: ResourceType, namespace: string | undefined, body: KubeObject, res: ServerResponse): void {
    if (!body.metadata?.name) return sendStatus(res, 422, 'Invalid', 'metadata.name: Required value');
    const invalid = validate(type, body);
    if (invalid) return sendStatus(res, 422, 'Invalid', invalid);
    if (type.namespaced) body.metadata.namespace = namespace;
    const key = keyOf(body.metadata.namespace, body.metadata.name);
    const store = this.#store(type.resource);
    if (store.has(key)) {
      return sendStatus(res, 409, 'AlreadyExists', `${type.resource} "${body.metadata.name}" already exists`);
    }
    const stored = this.#stamp(type, body, undefined);
    store.set(key, stored);
    this.#record(type.resource, 'ADDED', stored);
    sendJson(res, 201, stored);
  }

  #update(type: ResourceType, route: Route, body: KubeObject, res: ServerResponse): void {
    if (route.name === undefined || body.metadata?.name !== route.name) {
      return sendStatus(res, 400, 'BadRequest', 'the name in the body does not match the URL');
    }
    if (type.namespaced) body.metadata.namespace = route.namespace;
    const store = this.#store(type.resource);
    const key = keyOf(route.namespace, route.name);
    const existing = store.get(key);
    if (!existing) return sendStatus(res, 404, 'NotFound', `${type.resource} "${route.name}" not found`);
    const expected = body.metadata.resourceVersion;
    if (expected !== undefined && expected !== existing.metadata.resourceVersion) {
      return sendStatus(
        res,
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${type.resource} "${route.name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    // Validated after the precondition, as the real store does: a stale write is a 409 first.
    if (type.resource === 'configmaps' && existing.immutable === true) {
      const same = JSON.stringify(body.data ?? {}) === JSON.stringify(existing.data ?? {}) && body.immutable === true;
      if (!same) return sendStatus(res, 422, 'Invalid', `ConfigMap "${route.name}" is invalid: data: Forbidden: field is immutable when \`immutable\` is set`);
    }
    const invalid = validate(type, body);
    if (invalid) return sendStatus(res, 422, 'Invalid', invalid);
    const stored = this.#stamp(type, body, existing.metadata.uid);
    store.set(key, stored);
    this.#record(type.resource, 'MODIFIED', stored);
    sendJson(res, 200, stored);
  }

  #list(type: ResourceType, namespace: string | undefined, params: URLSearchParams, res: ServerResponse): void {
    const limit = Number(params.get('limit') ?? '0');
    const token = params.get('continue');
    let snapshotRv = this.#revision;
    let offset = 0;
    if (token) {
      const decoded = decodeContinue(token);
      if (!decoded) return sendStatus(res, 400, 'BadRequest', 'invalid continue token');
      if (decoded.rv <= this.#compactedThrough && decoded.rv < this.#revision) {
        return sendStatus(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
      }
      snapshotRv = decoded.rv;
      offset = decoded.offset;
    }
    // A consistent snapshot: the objects as they were at snapshotRv, rebuilt from history.
    const items = this.#snapshot(type.resource, namespace, snapshotRv);
    const page = limit > 0 ? items.slice(offset, offset + limit) : items.slice(offset);
    const next = limit > 0 && offset + limit < items.length ? encodeContinue(snapshotRv, offset + limit) : undefined;
    sendJson(res, 200, {
      kind: `${type.kind}List`,
      apiVersion: type.group ? `${type.group}/${type.version}` : type.version,
      metadata: { resourceVersion: String(snapshotRv), ...(next ? { continue: next } : {}) },
      items: page,
    });
  }

  #watch(type: ResourceType, namespace: string | undefined, params: URLSearchParams, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const requested = params.get('resourceVersion');
    // Without a resourceVersion (or with "0") the real server first sends the current
    // state as synthetic ADDED events, then the changes after it.
    const fromState = requested === null || requested === '' || requested === '0';
    const from = fromState ? this.#revision : Number(requested);
    if (fromState) {
      for (const o of this.#itemsAt(type.resource, namespace, this.#revision)) writeEvent(res, { type: 'ADDED', object: o });
    }
    if (from < this.#compactedThrough) {
      writeEvent(res, {
        type: 'ERROR',
        object: statusBody(410, 'Expired', `too old resource version: ${from} (${this.#compactedThrough})`),
      });
      res.end();
      return;
    }
    const watcher: Watcher = { resource: type.resource, namespace, res, bookmarks: params.get('allowWatchBookmarks') === 'true' };
    for (const e of this.#events) {
      if (e.resource === type.resource && e.rv > from && inNamespace(e.object, namespace)) {
        writeEvent(res, { type: e.type, object: e.object });
      }
    }
    this.#watchers.add(watcher);
    const timeout = Number(params.get('timeoutSeconds') ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      clearTimeout(timer);
      this.#watchers.delete(watcher);
    });
  }

  /** metrics-server's PodMetrics of the pods that exist and have a usage, by namespace and selector, or one by name. */
  #podMetrics(route: Route, params: URLSearchParams, res: ServerResponse): void {
    if (route.namespace === undefined) return sendStatus(res, 404, 'NotFound', 'the fake serves PodMetrics per namespace only');
    const matches = compileLabelSelector(params.get('labelSelector') ?? '');
    if (matches === undefined) return sendStatus(res, 400, 'BadRequest', `unable to parse requirement: ${params.get('labelSelector')}`);
    const metricsOf = (pod: KubeObject) => {
      const cpu = this.#podUsage.get(keyOf(pod.metadata.namespace, pod.metadata.name));
      if (cpu === undefined) return undefined;
      const labels = (pod.metadata.labels ?? {}) as Record<string, string>;
      return {
        kind: 'PodMetrics',
        apiVersion: 'metrics.k8s.io/v1beta1',
        metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, creationTimestamp: new Date().toISOString(), labels },
        timestamp: new Date(Date.now() - 10_000).toISOString(),
        window: '15.012s',
        containers: Object.entries(cpu).map(([name, usage]) => ({ name, usage: { cpu: usage, memory: '41236Ki' } })),
      };
    };
    const pods = this.#store('pods');
    if (route.name !== undefined) {
      const pod = pods.get(keyOf(route.namespace, route.name));
      const item = pod && metricsOf(pod);
      if (!item) return sendStatus(res, 404, 'NotFound', `podmetrics.metrics.k8s.io "${route.name}" not found`);
      return sendJson(res, 200, item);
    }
    const items = sortByKey([...pods.values()].filter((p) => p.metadata.namespace === route.namespace))
      .filter((p) => matches((p.metadata.labels ?? {}) as Record<string, string>))
      .flatMap((p) => metricsOf(p) ?? []);
    sendJson(res, 200, { kind: 'PodMetricsList', apiVersion: 'metrics.k8s.io/v1beta1', metadata: {}, items });
  }

  /** A SubjectAccessReview answered from the configured rules: `status.allowed` only. */
  #accessReview(body: KubeObject, res: ServerResponse): void {
    const spec = (body.spec ?? {}) as {
      user?: string;
      groups?: string[];
      resourceAttributes?: { verb?: string; group?: string; resource?: string; subresource?: string; namespace?: string; name?: string };
    };
    const attributes = spec.resourceAttributes;
    if (attributes === undefined) return sendStatus(res, 422, 'Invalid', 'the fake reads spec.resourceAttributes only');
    if (!spec.user && (spec.groups ?? []).length === 0) {
      return sendStatus(res, 422, 'Invalid', 'spec.user: Invalid value: "": at least one of user or group must be specified');
    }
    const request: AccessRequest = {
      user: spec.user || undefined,
      groups: spec.groups ?? [],
      verb: attributes.verb ?? '',
      group: attributes.group ?? '',
      resource: attributes.resource ?? '',
      subresource: attributes.subresource ?? '',
      namespace: attributes.namespace ?? '',
      name: attributes.name ?? '',
    };
    this.accessReviews.push(request);
    sendJson(res, 201, {
      kind: 'SubjectAccessReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec,
      status: { allowed: allowedByRules(this.#accessRules, request) },
    });
  }

  #sendBookmarks(): void {
    if (this.#stalled) return;
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      const type = this.#type(w.resource);
      writeEvent(w.res, {
        type: 'BOOKMARK',
        object: {
          kind: type.kind,
          apiVersion: type.group ? `${type.group}/${type.version}` : type.version,
          metadata: { resourceVersion: String(this.#revision) },
        },
      });
    }
  }

  /** The list at `rv`, computed once per resource and namespace while pages continue it (stored objects are never mutated in place). */
  #snapshot(resource: string, namespace: string | undefined, rv: number): KubeObject[] {
    const id = `${resource}|${namespace ?? ''}`;
    const cached = this.#snapshots.get(id);
    if (cached && cached.rv === rv) return cached.items;
    const items = this.#itemsAt(resource, namespace, rv);
    this.#snapshots.set(id, { rv, items });
    return items;
  }

  #itemsAt(resource: string, namespace: string | undefined, rv: number): KubeObject[] {
    const current = [...this.#store(resource).values()].filter((o) => inNamespace(o, namespace));
    if (rv >= this.#revision) return sortByKey(current);
    // Undo the events after rv, newest first.
    const byKey = new Map(current.map((o) => [keyOf(o.metadata.namespace, o.metadata.name), o]));
    const later = this.#events.filter((e) => e.resource === resource && e.rv > rv).reverse();
    for (const e of later) {
      const key = keyOf(e.object.metadata.namespace, e.object.metadata.name);
      const before = this.#events.findLast(
        (p) => p.resource === resource && p.rv <= rv && keyOf(p.object.metadata.namespace, p.object.metadata.name) === key,
      );
      if (before && before.type !== 'DELETED') byKey.set(key, before.object);
      else byKey.delete(key);
    }
    return sortByKey([...byKey.values()].filter((o) => inNamespace(o, namespace)));
  }

  #stamp(type: ResourceType, object: KubeObject, uid: string | undefined): KubeObject {
    this.#revision++;
    const stored = structuredClone(object);
    stored.apiVersion = type.group ? `${type.group}/${type.version}` : type.version;
    stored.kind = type.kind;
    stored.metadata.uid = uid ?? stored.metadata.uid ?? `uid-${++this.#uidCounter}`;
    stored.metadata.resourceVersion = String(this.#revision);
    return stored;
  }

  #record(resource: string, type: EventType, object: KubeObject): void {
    const event: StoredEvent = { rv: Number(object.metadata.resourceVersion), resource, type, object: structuredClone(object) };
    this.#events.push(event);
    if (this.#events.length > this.#historyLimit) {
      const dropped = this.#events.splice(0, this.#events.length - this.#historyLimit);
      this.#compactedThrough = dropped.at(-1)?.rv ?? this.#compactedThrough;
    }
    if (this.#stalled) return;
    for (const w of this.#watchers) {
      if (w.resource === resource && inNamespace(object, w.namespace)) writeEvent(w.res, { type, object });
    }
  }

  #type(resource: string): ResourceType {
    const type = this.#resources.find((r) => r.resource === resource);
    if (!type) throw new Error(`the fake does not serve ${resource}`);
    return type;
  }

  #store(resource: string): Map<string, KubeObject> {
    const store = this.#objects.get(resource);
    if (!store) throw new Error(`the fake does not serve ${resource}`);
    return store;
  }
}

interface Route {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly subresource?: string | undefined;
}

function parsePath(path: string): Route | undefined {
  const parts = path.split('/').filter(Boolean);
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts[1]) {
    group = '';
    version = parts[1];
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts[1] && parts[2]) {
    group = parts[1];
    version = parts[2];
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  if (!resource || rest.length > 3) return undefined;
  return { group, version, resource, namespace, name, subresource };
}

const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

/** The resources with a scale subresource among those served. */
const SCALABLE = new Set(['deployments', 'statefulsets', 'replicasets', 'replicationcontrollers']);

/** The apiserver's limit on a ConfigMap's (and a Secret's) data: 1 MiB. */
export const MAX_CONFIGMAP_DATA_BYTES = 1024 * 1024;

/** The part of the real validation the guard depends on; the error message when the object is invalid. */
function validate(type: ResourceType, body: KubeObject): string | undefined {
  if (type.resource !== 'configmaps') return undefined;
  let size = 0;
  for (const v of Object.values((body.data ?? {}) as Record<string, unknown>)) size += Buffer.byteLength(String(v));
  for (const v of Object.values((body.binaryData ?? {}) as Record<string, unknown>)) size += Buffer.from(String(v), 'base64').length;
  if (size <= MAX_CONFIGMAP_DATA_BYTES) return undefined;
  return `ConfigMap "${body.metadata.name}" is invalid: []: Too long: must have at most ${MAX_CONFIGMAP_DATA_BYTES} bytes`;
}

function inNamespace(o: KubeObject, namespace: string | undefined): boolean {
  return namespace === undefined || o.metadata.namespace === namespace;
}

function sortByKey(items: KubeObject[]): KubeObject[] {
  const keyed = items.map((o) => ({ key: keyOf(o.metadata.namespace, o.metadata.name), o }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return keyed.map((k) => k.o);
}

function encodeContinue(rv: number, offset: number): string {
  return Buffer.from(JSON.stringify({ rv, offset })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; offset: number } | undefined {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { rv?: unknown; offset?: unknown };
    return typeof v.rv === 'number' && typeof v.offset === 'number' ? { rv: v.rv, offset: v.offset } : undefined;
  } catch {
    return undefined;
  }
}

function statusBody(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, statusBody(code, reason, message));
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function writeEvent(res: ServerResponse, event: { type: string; object: unknown }): void {
  if (!res.writableEnded) res.write(`${JSON.stringify(event)}\n`);
}

async function readBody(req: IncomingMessage): Promise<KubeObject> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeObject;
}
