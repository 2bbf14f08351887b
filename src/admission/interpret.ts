import type { z } from 'zod';
import type { ClusterView } from '../cluster/cluster-view.ts';
import type { ExtraInstances, InstanceCount, PodServiceAccount, WorkloadChange, WorkloadRef } from '../core/types.ts';
import { podFingerprints } from '../core/fingerprint.ts';
import { GuardError } from '../errors.ts';
import { anyObjectShape, type Metadata, scaleShape } from './object-shapes.ts';
import type { AdmissionRequest } from './review.ts';
import { builtInKind, type CountResult, type PodTemplate, type WorkloadKind } from './workload-kinds.ts';

/** The annotation an agent writes its reasoning into; the one reserved key it may write. */
export const JUSTIFICATION_ANNOTATION = 'replica-guard.io/justification';
const RESERVED_PREFIX = 'replica-guard.io/';

/**
 * A resource outside the built-in kinds that runs instances and has a `scale`
 * subresource (configured by the platform team).
 */
export interface ScaleResource {
  readonly group: string;
  readonly resource: string;
  readonly kind: string;
  /** Dotted path of the steady count in the object, e.g. `spec.replicas`. */
  readonly replicasPath: string;
}

/** What interpretation needs besides the request. */
export interface InterpretContext {
  readonly view: ClusterView;
  readonly scaleResources: readonly ScaleResource[];
  /** Custom resources that run pods without a scale subresource, counted by configured paths. */
  readonly customKinds?: readonly WorkloadKind[] | undefined;
}

/** What a request means for instance counts. */
export type Interpretation =
  | { readonly type: 'change'; readonly kind: string; readonly change: WorkloadChange; readonly justification?: string }
  | { readonly type: 'not-counted'; readonly kind: string; readonly reason: string }
  | { readonly type: 'unknown-kind'; readonly kind: string; readonly resource: string };

const NONE: ExtraInstances = { type: 'none' };

/**
 * Turns an admission request into a {@link WorkloadChange}: the counts before and after
 * at the top owner, the pod service accounts it defines, and the facts it lacks.
 * Throws `RG_ERR_BAD_OBJECT` when a field it reads has the wrong shape.
 */
export function interpretRequest(req: AdmissionRequest, ctx: InterpretContext): Interpretation {
  const { group, resource } = req.resource;
  if (req.subResource === 'scale') {
    const parent = builtInKind(group, resource);
    if (parent?.scalable) return interpretScale(req, ctx, parent.group, parent.kind);
    const custom = findScaleResource(ctx, group, resource);
    if (custom) return interpretScale(req, ctx, custom.group, custom.kind);
    return { type: 'unknown-kind', kind: 'Scale', resource: `${resource}/scale` };
  }
  if (req.subResource !== '') {
    return {
      type: 'not-counted',
      kind: req.kind.kind,
      reason: `the ${req.subResource} subresource does not change instance counts`,
    };
  }
  if (req.operation === 'CONNECT') {
    return { type: 'not-counted', kind: req.kind.kind, reason: 'CONNECT does not change instance counts' };
  }
  const kind = builtInKind(group, resource);
  if (kind) return interpretObject(req, ctx, kind);
  const custom = findScaleResource(ctx, group, resource);
  if (custom) return interpretCustom(req, custom);
  const mapped = ctx.customKinds?.find((k) => k.group === group && k.resource === resource);
  if (mapped) return interpretObject(req, ctx, mapped);
  return { type: 'unknown-kind', kind: req.kind.kind, resource: group ? `${resource}.${group}` : resource };
}

function findScaleResource(ctx: InterpretContext, group: string, resource: string): ScaleResource | undefined {
  return ctx.scaleResources.find((r) => r.group === group && r.resource === resource);
}

function interpretObject(req: AdmissionRequest, ctx: InterpretContext, kind: WorkloadKind): Interpretation {
  const after = req.operation === 'DELETE' ? null : parseShape(kind.shape, req.object, 'object');
  const before =
    req.operation === 'CREATE' || req.oldObject === null ? null : parseShape(kind.shape, req.oldObject, 'oldObject');
  const meta = metadataOf(after ?? before);
  const ref = refOf(req, kind.group, kind.kind, meta, metadataOf(before));
  const facts = { nodes: ctx.view.nodes() };
  const unknownFacts: string[] = [];
  // The shapes were checked by kind.shape, which is exactly what kind's readers take.
  const countOf = (o: unknown): CountResult => kind.count(o as never, facts);

  let beforeCount: InstanceCount | null = null;
  let afterCount: InstanceCount | null = null;
  let uncountable: string | undefined;
  if (before !== null) {
    const c = countOf(before);
    if ('count' in c) beforeCount = c.count;
  }
  if (after !== null) {
    const c = countOf(after);
    if ('count' in c) afterCount = c.count;
    else uncountable = `cannot count this ${kind.kind}: ${c.unknown}`;
  }

  let scaleTarget: WorkloadChange['scaleTarget'];
  if (kind.kind === 'HorizontalPodAutoscaler' && after !== null) {
    // An HPA is judged at the workload it scales: its ceiling against what that runs now.
    scaleTarget = hpaTargetRef(after);
    const target = ctx.view.workload(scaleTarget.group, scaleTarget.kind, req.namespace, scaleTarget.name);
    const extra = target?.count.extra ?? NONE;
    if (afterCount) afterCount = { steady: afterCount.steady, extra };
    if (beforeCount) beforeCount = { steady: beforeCount.steady, extra };
    else if (target) beforeCount = { steady: target.count.steady, extra };
  }

  const annotationsBefore = before === null ? undefined : metadataOf(before)?.annotations;
  const change: WorkloadChange = {
    operation: req.operation === 'CONNECT' ? 'UPDATE' : req.operation,
    ref,
    before: beforeCount,
    after: afterCount,
    createsWorkload: req.operation === 'CREATE' && kind.isWorkload,
    clamp: after !== null && afterCount !== null ? kind.clamp(after as never) : null,
    podServiceAccounts:
      after === null
        ? []
        : changedServiceAccounts(
            kind.podTemplates(after as never),
            before === null ? [] : kind.podTemplates(before as never),
            req.namespace,
          ),
    reservedAnnotationChanges:
      after === null ? [] : reservedAnnotationChanges(annotationsBefore ?? undefined, meta?.annotations ?? undefined),
    unknownFacts,
    uncountable,
    scaleTarget,
    pods: after === null ? undefined : podsOf(kind.podTemplates(after as never)),
    justification: justificationOf(annotationsBefore ?? undefined, after === null ? undefined : (meta?.annotations ?? undefined)),
  };
  return { type: 'change', kind: kind.kind, change, justification: meta?.annotations?.[JUSTIFICATION_ANNOTATION] };
}

function hpaTargetRef(hpa: unknown): { group: string; kind: string; name: string } {
  // The shape was checked by the HPA kind's schema.
  const ref = (hpa as { spec: { scaleTargetRef: { apiVersion?: string | null; kind: string; name: string } } }).spec
    .scaleTargetRef;
  const apiVersion = ref.apiVersion ?? '';
  const group = apiVersion.includes('/') ? (apiVersion.split('/')[0] ?? '') : '';
  return { group, kind: ref.kind, name: ref.name };
}

function interpretScale(req: AdmissionRequest, ctx: InterpretContext, group: string, kind: string): Interpretation {
  const after = parseShape(scaleShape, req.object, 'object');
  const before = req.oldObject === null ? null : parseShape(scaleShape, req.oldObject, 'oldObject');
  const name = req.name || after.metadata.name || '';
  const parent = ctx.view.workload(group, kind, req.namespace, name);
  const extra = parent?.count.extra ?? NONE;
  const unknownFacts = parent
    ? []
    : [`the ${kind} ${req.namespace ? `${req.namespace}/` : ''}${name} this Scale belongs to has not been seen`];
  // A Scale's metadata.uid is its parent's: the same workload as an edit of the parent.
  const ref: WorkloadRef = { group, kind, namespace: req.namespace, name, uid: after.metadata.uid ?? parent?.ref.uid };
  const change: WorkloadChange = {
    operation: 'UPDATE',
    ref,
    // `spec: {}` means 0: the field is omitted when zero.
    before: { steady: before?.spec?.replicas ?? 0, extra },
    after: { steady: after.spec?.replicas ?? 0, extra },
    createsWorkload: false,
    clamp: { path: '/spec/replicas', present: after.spec?.replicas !== undefined && after.spec?.replicas !== null },
    podServiceAccounts: [],
    reservedAnnotationChanges: [],
    unknownFacts,
    uncountable: undefined,
    // A Scale carries no annotations of its own: its parent's reasoning is what counts.
    justification: { text: parent?.justification, changed: false, from: 'parent' },
  };
  return { type: 'change', kind: 'Scale', change, justification: parent?.justification };
}

function interpretCustom(req: AdmissionRequest, resource: ScaleResource): Interpretation {
  const read = (o: unknown, what: string): { meta: Metadata | undefined; replicas: number | undefined } => {
    const parsed = parseShape(anyObjectShape, o, what);
    const value = readPath(o, resource.replicasPath);
    if (value !== undefined && value !== null && !(Number.isInteger(value) && (value as number) >= 0)) {
      throw new GuardError('RG_ERR_BAD_OBJECT', `${what}.${resource.replicasPath} must be a whole number, got ${JSON.stringify(value)}`);
    }
    return { meta: parsed.metadata ?? undefined, replicas: typeof value === 'number' ? value : undefined };
  };
  const after = req.operation === 'DELETE' ? null : read(req.object, 'object');
  const before = req.operation === 'CREATE' || req.oldObject === null ? null : read(req.oldObject, 'oldObject');
  const meta = after?.meta ?? before?.meta;
  const ref = refOf(req, resource.group, resource.kind, meta, before?.meta);
  const count = (r: { replicas: number | undefined }): InstanceCount => ({ steady: r.replicas ?? 1, extra: NONE });
  const change: WorkloadChange = {
    operation: req.operation === 'CONNECT' ? 'UPDATE' : req.operation,
    ref,
    before: before ? count(before) : null,
    after: after ? count(after) : null,
    createsWorkload: req.operation === 'CREATE',
    clamp: after
      ? { path: `/${resource.replicasPath.split('.').join('/')}`, present: after.replicas !== undefined }
      : null,
    podServiceAccounts: [],
    reservedAnnotationChanges: after ? reservedAnnotationChanges(before?.meta?.annotations ?? undefined, meta?.annotations ?? undefined) : [],
    unknownFacts: [],
    uncountable: undefined,
    justification: justificationOf(before?.meta?.annotations ?? undefined, after ? (meta?.annotations ?? undefined) : undefined),
  };
  return { type: 'change', kind: resource.kind, change, justification: meta?.annotations?.[JUSTIFICATION_ANNOTATION] };
}

function justificationOf(
  before: Readonly<Record<string, string>> | undefined,
  after: Readonly<Record<string, string>> | undefined,
): WorkloadChange['justification'] {
  const text = after?.[JUSTIFICATION_ANNOTATION];
  return { text, changed: text !== undefined && text !== before?.[JUSTIFICATION_ANNOTATION], from: 'object' };
}

function readPath(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const part of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function refOf(
  req: AdmissionRequest,
  group: string,
  kind: string,
  meta: Metadata | undefined,
  oldMeta: Metadata | undefined,
): WorkloadRef {
  const name = req.name || meta?.name || (meta?.generateName ? `${meta.generateName}*` : '');
  return { group, kind, namespace: req.namespace, name, uid: oldMeta?.uid ?? meta?.uid };
}

function metadataOf(o: unknown): Metadata | undefined {
  if (typeof o !== 'object' || o === null) return undefined;
  return (o as { metadata?: Metadata }).metadata;
}

/** Service accounts of the templates a write defines or changes; a template left as it was is not re-checked. */
function changedServiceAccounts(
  after: readonly PodTemplate[],
  before: readonly PodTemplate[],
  namespace: string,
): PodServiceAccount[] {
  const out: PodServiceAccount[] = [];
  for (const t of after) {
    const name = serviceAccountOf(t);
    const old = before.find((b) => b.field === t.field);
    if (old && serviceAccountOf(old) === name) continue;
    out.push({ namespace, name, field: t.field });
  }
  return out;
}

function podsOf(templates: readonly PodTemplate[]): WorkloadChange['pods'] {
  if (templates.length === 0) return undefined;
  const serviceAccounts = [...new Set(templates.map(serviceAccountOf))];
  const fingerprints = templates.flatMap((t) => podFingerprints(serviceAccountOf(t), t.spec.containers ?? []));
  return { serviceAccounts, fingerprints };
}

/** A pod runs as `default` when neither field names a service account. */
function serviceAccountOf(t: PodTemplate): string {
  return t.spec.serviceAccountName || t.spec.serviceAccount || 'default';
}

/** `replica-guard.io/*` keys that differ between two annotation maps, other than the justification. */
export function reservedAnnotationChanges(
  before: Readonly<Record<string, string>> | undefined,
  after: Readonly<Record<string, string>> | undefined,
): string[] {
  const keys = new Set<string>();
  for (const source of [before, after]) {
    for (const key of Object.keys(source ?? {})) {
      if (key.startsWith(RESERVED_PREFIX) && key !== JUSTIFICATION_ANNOTATION && before?.[key] !== after?.[key]) {
        keys.add(key);
      }
    }
  }
  return [...keys].sort();
}

function parseShape<T extends z.ZodType>(shape: T, value: unknown, what: string): z.infer<T> {
  const result = shape.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = [what, ...(issue?.path ?? []).map(String)].join('.');
  throw new GuardError('RG_ERR_BAD_OBJECT', `${path}: ${issue?.message ?? 'invalid'}`);
}
