import type { AdmissionRequest } from '../admission/review.ts';

/**
 * What of a request a recording keeps. Pod templates carry secrets (environment values,
 * command lines, volumes), and so do annotations (`kubectl.kubernetes.io/last-applied-configuration`
 * holds the whole object), so the object is rebuilt from an allowlist rather than copied
 * with a denylist:
 *
 * - the object's `apiVersion`, `kind`, and every `metadata` (the object's and a template's)
 *   reduced to `name`, `generateName`, `namespace`, `uid` and the `replica-guard.io/*` annotations;
 * - `spec`, in which every pod spec (an object with a `containers` list) is reduced to
 *   `serviceAccountName`, `serviceAccount`, `nodeSelector`, the required node affinity and
 *   each container's and init container's `name` and `image`;
 * - nothing else: no `status`, no `data`, no `managedFields`, no other annotation or label.
 *
 * The request keeps its uid, kind, resource, subresource, name, namespace, operation and the
 * caller's user name and groups (not `userInfo.extra`, which can carry token claims).
 */
export function sanitizeRequest(req: AdmissionRequest): AdmissionRequest {
  return {
    uid: req.uid,
    kind: req.kind,
    resource: req.resource,
    subResource: req.subResource,
    name: req.name,
    namespace: req.namespace,
    operation: req.operation,
    userInfo: { username: req.userInfo.username, groups: req.userInfo.groups },
    object: sanitizeObject(req.object),
    oldObject: sanitizeObject(req.oldObject),
    dryRun: req.dryRun,
  };
}

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A Kubernetes object reduced to what the guard reads; null stays null. */
export function sanitizeObject(object: unknown): unknown {
  if (!isRecord(object)) return null;
  const out: Json = {};
  if (typeof object.apiVersion === 'string') out.apiVersion = object.apiVersion;
  if (typeof object.kind === 'string') out.kind = object.kind;
  if (object.metadata !== undefined) out.metadata = sanitizeMetadata(object.metadata);
  if (object.spec !== undefined) out.spec = sanitizeSpec(object.spec);
  return out;
}

const METADATA_KEPT = ['name', 'generateName', 'namespace', 'uid'] as const;
const KEPT_ANNOTATION_PREFIX = 'replica-guard.io/';

function sanitizeMetadata(metadata: unknown): unknown {
  if (!isRecord(metadata)) return metadata === null ? null : undefined;
  const out: Json = {};
  for (const key of METADATA_KEPT) if (typeof metadata[key] === 'string') out[key] = metadata[key];
  if (isRecord(metadata.annotations)) {
    const kept = Object.entries(metadata.annotations).filter(([k]) => k.startsWith(KEPT_ANNOTATION_PREFIX));
    if (kept.length > 0) out.annotations = Object.fromEntries(kept);
  }
  return out;
}

function sanitizeSpec(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sanitizeSpec);
  if (!isRecord(value)) return value;
  if (Array.isArray(value.containers)) return sanitizePodSpec(value);
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) out[key] = key === 'metadata' ? sanitizeMetadata(v) : sanitizeSpec(v);
  return out;
}

const POD_SPEC_KEPT = ['serviceAccountName', 'serviceAccount', 'nodeSelector'] as const;

function sanitizePodSpec(spec: Json): Json {
  const out: Json = {};
  for (const key of POD_SPEC_KEPT) if (spec[key] !== undefined) out[key] = spec[key];
  const required = isRecord(spec.affinity) && isRecord(spec.affinity.nodeAffinity)
    ? spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
    : undefined;
  if (required !== undefined) out.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } };
  out.containers = containers(spec.containers);
  if (Array.isArray(spec.initContainers)) out.initContainers = containers(spec.initContainers);
  return out;
}

function containers(list: unknown): unknown[] {
  if (!Array.isArray(list)) return [];
  return list.map((c) => {
    if (!isRecord(c)) return {};
    const out: Json = {};
    if (typeof c.name === 'string') out.name = c.name;
    if (typeof c.image === 'string') out.image = c.image;
    return out;
  });
}
