import { createHash } from 'node:crypto';
import { parseState } from '../core/ledger-state.ts';
import {
  type ListedObject,
  planShutdown,
  SHUTDOWN_NODE_LABEL,
  SHUTDOWN_RESOURCES,
  type ShutdownAction,
  type ShutdownResource,
} from '../core/shutdown-plan.ts';
import type { KubeConnection } from './kube-http.ts';
import { ledgerConfigMapName } from './kube-ledger.ts';
import { expectStatus, kubeJson, resourcePath } from './kube-rest.ts';

/** An agent, as the shutdown names it. */
export interface AgentRef {
  readonly namespace: string;
  readonly name: string;
}

/** What one action did. */
export type ActionResult = 'changed' | 'unchanged' | 'gone' | 'skipped' | 'planned';

/** The snapshot a shutdown writes before changing anything, and restore reads. */
export interface ShutdownSnapshot {
  readonly agent: string;
  readonly createdAt: string;
  readonly by: string;
  readonly actions: readonly ShutdownAction[];
}

const CONFIGMAPS = { group: '', version: 'v1', resource: 'configmaps' } as const;
const SNAPSHOT_LABELS = { 'app.kubernetes.io/name': 'replica-guard', 'app.kubernetes.io/component': 'shutdown-snapshot' };

/** The snapshot ConfigMap's name: a hash of the agent, so any namespace and name fit. */
export function snapshotName(agent: AgentRef): string {
  return `replica-guard-shutdown-${createHash('sha256').update(`${agent.namespace}:${agent.name}`).digest('hex').slice(0, 20)}`;
}

const resourceOf = (name: string): ShutdownResource => {
  const r = SHUTDOWN_RESOURCES.find((x) => x.resource === name);
  if (!r) throw new Error(`unknown resource ${name} in a shutdown snapshot`);
  return r;
};

/** Lists every object of a resource in the cluster, page by page. */
async function listAll(connection: KubeConnection, r: ShutdownResource): Promise<ListedObject[]> {
  const items: ListedObject[] = [];
  let token: string | undefined;
  do {
    const query = new URLSearchParams({ limit: '500', ...(token ? { continue: token } : {}) });
    const answer = await kubeJson(connection, 'GET', `${resourcePath(r)}?${query}`);
    expectStatus(answer, [200], `listing ${r.resource}`);
    const body = answer.body as { metadata?: { continue?: string }; items?: ListedObject[] };
    items.push(...(body.items ?? []));
    token = body.metadata?.continue || undefined;
  } while (token);
  return items;
}

/** The UIDs the agent created, from its shared ledger (none when it has none). */
async function provenanceOf(connection: KubeConnection, guardNamespace: string, agent: AgentRef): Promise<Set<string>> {
  const username = `system:serviceaccount:${agent.namespace}:${agent.name}`;
  const answer = await kubeJson(connection, 'GET', resourcePath(CONFIGMAPS, guardNamespace, ledgerConfigMapName(username)));
  if (answer.status === 404) return new Set();
  expectStatus(answer, [200], "reading the agent's ledger");
  const data = (answer.body as { data?: Record<string, string> }).data;
  return new Set(parseState(data?.state).state.provenance.map((p) => p.uid));
}

/** The actions that bring the agent's family to zero now. */
export async function discoverShutdown(connection: KubeConnection, guardNamespace: string, agent: AgentRef): Promise<ShutdownAction[]> {
  const objects = new Map<string, readonly ListedObject[]>();
  for (const r of SHUTDOWN_RESOURCES) objects.set(r.resource, await listAll(connection, r));
  return planShutdown({ objects, agent, provenance: await provenanceOf(connection, guardNamespace, agent) });
}

/** The agent's snapshot, if a shutdown wrote one. */
export async function readSnapshot(connection: KubeConnection, guardNamespace: string, agent: AgentRef): Promise<ShutdownSnapshot | undefined> {
  const answer = await kubeJson(connection, 'GET', resourcePath(CONFIGMAPS, guardNamespace, snapshotName(agent)));
  if (answer.status === 404) return undefined;
  expectStatus(answer, [200], 'reading the shutdown snapshot');
  const data = (answer.body as { data?: Record<string, string> }).data ?? {};
  try {
    return { agent: data.agent ?? '', createdAt: data.createdAt ?? '', by: data.by ?? '', actions: JSON.parse(data.actions ?? '[]') as ShutdownAction[] };
  } catch (err) {
    throw new Error(`the shutdown snapshot ${snapshotName(agent)} cannot be read: ${(err as Error).message}`);
  }
}

/**
 * Writes the snapshot as an immutable ConfigMap. When one exists already (an interrupted
 * shutdown), that one is kept and returned: its values are the ones from before any change.
 */
export async function writeSnapshot(connection: KubeConnection, guardNamespace: string, agent: AgentRef, snapshot: ShutdownSnapshot): Promise<ShutdownSnapshot> {
  const body = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    immutable: true,
    metadata: { name: snapshotName(agent), namespace: guardNamespace, labels: SNAPSHOT_LABELS, annotations: { 'replica-guard.io/agent': snapshot.agent } },
    data: { agent: snapshot.agent, createdAt: snapshot.createdAt, by: snapshot.by, actions: JSON.stringify(snapshot.actions) },
  };
  const answer = await kubeJson(connection, 'POST', resourcePath(CONFIGMAPS, guardNamespace), body);
  if (answer.status === 409) {
    const existing = await readSnapshot(connection, guardNamespace, agent);
    if (existing) return existing;
  }
  expectStatus(answer, [200, 201], 'writing the shutdown snapshot');
  return snapshot;
}

/** Deletes the snapshot once everything is restored. */
export async function deleteSnapshot(connection: KubeConnection, guardNamespace: string, agent: AgentRef): Promise<void> {
  const answer = await kubeJson(connection, 'DELETE', resourcePath(CONFIGMAPS, guardNamespace, snapshotName(agent)));
  expectStatus(answer, [200, 202, 404], 'deleting the shutdown snapshot');
}

/**
 * Read → change → write of one object with compare-and-swap, again on a conflict.
 * `change` returns the new object, or undefined when it already is as wanted.
 */
async function update(connection: KubeConnection, path: string, change: (o: ListedObject) => ListedObject | undefined): Promise<ActionResult> {
  for (let attempt = 1; ; attempt++) {
    const got = await kubeJson(connection, 'GET', path);
    if (got.status === 404) return 'gone';
    expectStatus(got, [200], `reading ${path}`);
    const next = change(got.body as ListedObject);
    if (next === undefined) return 'unchanged';
    const put = await kubeJson(connection, 'PUT', path, next);
    if (put.status === 409 && attempt < 5) continue;
    if (put.status === 404) return 'gone';
    expectStatus(put, [200], `updating ${path}`);
    return 'changed';
  }
}

const withSpec = (o: ListedObject, spec: Record<string, unknown>): ListedObject => ({ ...o, spec: { ...o.spec, ...spec } });

function withoutKey(o: Record<string, unknown> | undefined, key: string): Record<string, unknown> {
  const { [key]: _dropped, ...rest } = o ?? {};
  return rest;
}

/** Sets (or, for null, removes) a DaemonSet's node selector. */
function withNodeSelector(o: ListedObject, selector: Readonly<Record<string, string>> | null): ListedObject {
  const template = (o.spec?.template ?? {}) as { spec?: Record<string, unknown>; [k: string]: unknown };
  const podSpec = selector === null ? withoutKey(template.spec, 'nodeSelector') : { ...template.spec, nodeSelector: selector };
  return withSpec(o, { template: { ...template, spec: podSpec } });
}

function setReplicas(connection: KubeConnection, a: ShutdownAction, replicas: number): Promise<ActionResult> {
  const path = resourcePath(resourceOf(a.resource), a.namespace, a.name, 'scale');
  return update(connection, path, (scale) => {
    if ((scale.spec?.replicas ?? 0) === replicas) return undefined;
    return { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: scale.metadata, spec: { replicas } };
  });
}

/** Applies one shutdown action; idempotent. */
export async function applyShutdown(connection: KubeConnection, a: ShutdownAction): Promise<ActionResult> {
  const path = resourcePath(resourceOf(a.resource), a.namespace, a.name);
  switch (a.type) {
    case 'scale':
      return setReplicas(connection, a, 0);
    case 'suspend':
      return update(connection, path, (o) => (o.spec?.suspend === true ? undefined : withSpec(o, { suspend: true })));
    case 'keep-off-nodes':
      return update(connection, path, (o) => {
        const selector = ((o.spec?.template as { spec?: { nodeSelector?: Record<string, string> } } | undefined)?.spec?.nodeSelector ?? {}) as Record<string, string>;
        return selector[SHUTDOWN_NODE_LABEL] === 'true' ? undefined : withNodeSelector(o, { ...selector, [SHUTDOWN_NODE_LABEL]: 'true' });
      });
    case 'delete-hpa':
    case 'delete-pod': {
      // Looked up first, so that a second run sends no write at all.
      const got = await kubeJson(connection, 'GET', path);
      if (got.status === 404) return 'unchanged';
      expectStatus(got, [200], `reading ${path}`);
      const answer = await kubeJson(connection, 'DELETE', path);
      if (answer.status === 404) return 'unchanged';
      expectStatus(answer, [200, 202], `deleting ${path}`);
      return 'changed';
    }
  }
}

/** Puts back what one shutdown action changed; idempotent. */
export async function applyRestore(connection: KubeConnection, a: ShutdownAction): Promise<ActionResult> {
  const r = resourceOf(a.resource);
  const path = resourcePath(r, a.namespace, a.name);
  switch (a.type) {
    case 'scale':
      return setReplicas(connection, a, a.from);
    case 'suspend':
      return update(connection, path, (o) => {
        const now = typeof o.spec?.suspend === 'boolean' ? o.spec.suspend : null;
        if (now === a.from) return undefined;
        return a.from === null ? { ...o, spec: withoutKey(o.spec, 'suspend') } : withSpec(o, { suspend: a.from });
      });
    case 'keep-off-nodes':
      return update(connection, path, (o) => {
        const now = (o.spec?.template as { spec?: { nodeSelector?: Record<string, string> | null } } | undefined)?.spec?.nodeSelector ?? null;
        return JSON.stringify(now) === JSON.stringify(a.from) ? undefined : withNodeSelector(o, a.from);
      });
    case 'delete-hpa': {
      const got = await kubeJson(connection, 'GET', path);
      if (got.status === 200) return 'unchanged';
      const created = await kubeJson(connection, 'POST', resourcePath(r, a.namespace), a.manifest);
      if (created.status === 409) return 'unchanged';
      expectStatus(created, [200, 201], `recreating ${path}`);
      return 'changed';
    }
    case 'delete-pod':
      return 'skipped';
  }
}
