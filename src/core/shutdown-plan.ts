/**
 * What `replica-guard shutdown` changes to bring an agent's family to zero, and what
 * `restore` puts back. Pure: the caller lists the objects and applies the actions.
 *
 * The family is every top-level workload whose pods run as the agent's service account
 * (in its namespace), plus every workload the agent created (the provenance in its
 * ledger), wherever it runs. Actions, in the order they are applied:
 * 1. HPAs that scale a member are deleted (they would scale it back up); restore recreates them;
 * 2. CronJobs, then Jobs (those a CronJob made too), are suspended; restore sets `suspend` back;
 * 3. Deployments, StatefulSets, ReplicaSets, ReplicationControllers are scaled to 0 through
 *    their scale subresource; restore scales them back;
 * 4. DaemonSets are kept off every node by a node selector no node carries; restore puts
 *    the selector back as it was;
 * 5. bare Pods are deleted (a Pod cannot be paused; restore does not recreate them).
 */

/** An object as listed: metadata and spec are read. */
export interface ListedObject {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly ownerReferences?: readonly { readonly kind?: string; readonly uid?: string; readonly controller?: boolean }[];
    readonly [field: string]: unknown;
  };
  readonly spec?: Record<string, unknown>;
  readonly [field: string]: unknown;
}

/** A workload resource the shutdown reads, and how it stops it. */
export interface ShutdownResource {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly kind: string;
  readonly how: 'scale' | 'suspend' | 'keep-off-nodes' | 'delete-pod' | 'delete-hpa';
}

export const SHUTDOWN_RESOURCES: readonly ShutdownResource[] = [
  { group: 'autoscaling', version: 'v2', resource: 'horizontalpodautoscalers', kind: 'HorizontalPodAutoscaler', how: 'delete-hpa' },
  { group: 'batch', version: 'v1', resource: 'cronjobs', kind: 'CronJob', how: 'suspend' },
  { group: 'batch', version: 'v1', resource: 'jobs', kind: 'Job', how: 'suspend' },
  { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', how: 'scale' },
  { group: 'apps', version: 'v1', resource: 'statefulsets', kind: 'StatefulSet', how: 'scale' },
  { group: 'apps', version: 'v1', resource: 'replicasets', kind: 'ReplicaSet', how: 'scale' },
  { group: '', version: 'v1', resource: 'replicationcontrollers', kind: 'ReplicationController', how: 'scale' },
  { group: 'apps', version: 'v1', resource: 'daemonsets', kind: 'DaemonSet', how: 'keep-off-nodes' },
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', how: 'delete-pod' },
];

/** The node label a shut-down DaemonSet requires: no node carries it. */
export const SHUTDOWN_NODE_LABEL = 'replica-guard.io/shutdown';

/** One change, with what was there before it. */
export type ShutdownAction =
  | (Target & { readonly type: 'scale'; readonly from: number })
  /** `from` null: the field was absent. */
  | (Target & { readonly type: 'suspend'; readonly from: boolean | null })
  | (Target & { readonly type: 'keep-off-nodes'; readonly from: Readonly<Record<string, string>> | null })
  | (Target & { readonly type: 'delete-pod' })
  | (Target & { readonly type: 'delete-hpa'; readonly manifest: ListedObject });

/** The object an action is about. */
export interface Target {
  readonly resource: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
}

/** What the shutdown reads: each resource's objects, the agent, and the UIDs it created. */
export interface FamilyInput {
  readonly objects: ReadonlyMap<string, readonly ListedObject[]>;
  readonly agent: { readonly namespace: string; readonly name: string };
  readonly provenance: ReadonlySet<string>;
}

const controllerOf = (o: ListedObject) => o.metadata?.ownerReferences?.find((r) => r.controller === true);

function podSpecOf(kind: string, o: ListedObject): Record<string, unknown> | undefined {
  const spec = o.spec;
  if (spec === undefined) return undefined;
  if (kind === 'Pod') return spec;
  if (kind === 'CronJob') {
    const job = (spec.jobTemplate as { spec?: { template?: { spec?: Record<string, unknown> } } } | undefined)?.spec;
    return job?.template?.spec;
  }
  return (spec.template as { spec?: Record<string, unknown> } | undefined)?.spec;
}

function runsAs(kind: string, o: ListedObject, agent: FamilyInput['agent']): boolean {
  if (o.metadata?.namespace !== agent.namespace) return false;
  const pod = podSpecOf(kind, o);
  const sa = (pod?.serviceAccountName as string | undefined) || (pod?.serviceAccount as string | undefined) || 'default';
  return sa === agent.name;
}

const targetOf = (r: ShutdownResource, o: ListedObject): Target => ({
  resource: r.resource,
  kind: r.kind,
  namespace: o.metadata?.namespace ?? '',
  name: o.metadata?.name ?? '',
  uid: o.metadata?.uid,
});

/** A listed HPA as it can be created again: spec, labels and annotations, no server fields. */
function recreatable(o: ListedObject): ListedObject {
  const m = o.metadata ?? {};
  const metadata: Record<string, unknown> = { name: m.name, namespace: m.namespace };
  if (m.labels) metadata.labels = m.labels;
  if (m.annotations) metadata.annotations = m.annotations;
  return { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: metadata as ListedObject['metadata'], spec: o.spec };
}

/** The actions that bring the family to zero, in the order to apply them. */
export function planShutdown(input: FamilyInput): ShutdownAction[] {
  const members = new Map<string, ShutdownAction>();
  const memberNames = new Set<string>();
  const out: ShutdownAction[] = [];
  // Workloads first (HPAs are found through them), then emitted in SHUTDOWN_RESOURCES order.
  for (const r of SHUTDOWN_RESOURCES) {
    if (r.how === 'delete-hpa') continue;
    for (const o of input.objects.get(r.resource) ?? []) {
      const owner = controllerOf(o);
      const created = o.metadata?.uid !== undefined && input.provenance.has(o.metadata.uid);
      // A member's own children (a Deployment's ReplicaSets, its Pods) stop with it; a
      // CronJob's Jobs do not stop when it is suspended, so Jobs count whatever owns them.
      if (owner !== undefined && !(r.kind === 'Job' && owner.kind === 'CronJob')) continue;
      if (!created && !runsAs(r.kind, o, input.agent)) continue;
      const t = targetOf(r, o);
      memberNames.add(`${r.kind}/${t.namespace}/${t.name}`);
      const spec = o.spec ?? {};
      let action: ShutdownAction;
      switch (r.how) {
        case 'scale':
          action = { ...t, type: 'scale', from: typeof spec.replicas === 'number' ? spec.replicas : 1 };
          break;
        case 'suspend':
          action = { ...t, type: 'suspend', from: typeof spec.suspend === 'boolean' ? spec.suspend : null };
          break;
        case 'keep-off-nodes': {
          const selector = (spec.template as { spec?: { nodeSelector?: Record<string, string> | null } } | undefined)?.spec?.nodeSelector;
          action = { ...t, type: 'keep-off-nodes', from: selector ?? null };
          break;
        }
        default:
          action = { ...t, type: 'delete-pod' };
      }
      members.set(`${r.resource}/${t.namespace}/${t.name}`, action);
    }
  }
  const hpa = SHUTDOWN_RESOURCES[0];
  for (const o of hpa ? (input.objects.get(hpa.resource) ?? []) : []) {
    const ref = (o.spec?.scaleTargetRef ?? {}) as { kind?: string; name?: string };
    if (hpa && memberNames.has(`${ref.kind}/${o.metadata?.namespace}/${ref.name}`)) {
      out.push({ ...targetOf(hpa, o), type: 'delete-hpa', manifest: recreatable(o) });
    }
  }
  for (const r of SHUTDOWN_RESOURCES) {
    for (const [key, action] of members) if (key.startsWith(`${r.resource}/`)) out.push(action);
  }
  return out;
}

/** An action in words, for the table: what it does and what restore does. */
export function describeAction(a: ShutdownAction): { change: string; restore: string } {
  switch (a.type) {
    case 'scale':
      return { change: `replicas ${a.from} → 0`, restore: `replicas 0 → ${a.from}` };
    case 'suspend':
      return { change: `suspend ${a.from ?? 'unset'} → true`, restore: `suspend → ${a.from ?? 'unset'}` };
    case 'keep-off-nodes':
      return { change: `nodeSelector + ${SHUTDOWN_NODE_LABEL}`, restore: `nodeSelector → ${a.from === null ? 'none' : JSON.stringify(a.from)}` };
    case 'delete-hpa':
      return { change: 'deleted', restore: 'recreated' };
    case 'delete-pod':
      return { change: 'deleted', restore: 'not recreated' };
  }
}
