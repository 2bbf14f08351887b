import { GuardError } from '../errors.ts';

/** Group, version and resource of a request, as the apiserver names them. */
export interface GroupVersionResource {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
}

/** Group, version and kind of the object a request carries. */
export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** The caller, as `request.userInfo` gives it. */
export interface UserInfo {
  readonly username: string;
  readonly groups: readonly string[];
}

/** The fields of an `admission.k8s.io/v1` request the guard reads. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly kind: GroupVersionKind;
  readonly resource: GroupVersionResource;
  readonly subResource: string;
  readonly name: string;
  readonly namespace: string;
  readonly operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  readonly userInfo: UserInfo;
  readonly object: unknown;
  readonly oldObject: unknown;
  readonly dryRun: boolean;
}

const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

/**
 * Checks an AdmissionReview envelope by hand rather than through a schema library:
 * every request, agent or not, passes here, so it stays cheap. Throws a
 * {@link GuardError} with code `RG_ERR_BAD_REVIEW` naming the first field at fault.
 * Object bodies are checked later, per kind, and only for agents.
 */
export function parseAdmissionReview(body: unknown): AdmissionRequest {
  const review = record(body, 'the body');
  if (review.apiVersion !== 'admission.k8s.io/v1') {
    throw bad(`apiVersion must be "admission.k8s.io/v1", got ${show(review.apiVersion)}`);
  }
  if (review.kind !== 'AdmissionReview') throw bad(`kind must be "AdmissionReview", got ${show(review.kind)}`);
  const request = record(review.request, 'request');
  const uid = request.uid;
  if (typeof uid !== 'string' || uid === '') throw bad('request.uid is missing');
  const operation = request.operation;
  if (typeof operation !== 'string' || !OPERATIONS.has(operation)) {
    throw bad(`request.operation must be one of CREATE, UPDATE, DELETE, CONNECT, got ${show(operation)}`);
  }
  const kind = record(request.kind, 'request.kind');
  const resource = record(request.resource, 'request.resource');
  const userInfo = record(request.userInfo, 'request.userInfo');
  if (typeof userInfo.username !== 'string') throw bad('request.userInfo.username is missing');
  const groups = userInfo.groups ?? [];
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) {
    throw bad('request.userInfo.groups must be a list of strings');
  }
  return {
    uid,
    kind: {
      group: optionalString(kind.group, 'request.kind.group'),
      version: requiredString(kind.version, 'request.kind.version'),
      kind: requiredString(kind.kind, 'request.kind.kind'),
    },
    resource: {
      group: optionalString(resource.group, 'request.resource.group'),
      version: requiredString(resource.version, 'request.resource.version'),
      resource: requiredString(resource.resource, 'request.resource.resource'),
    },
    subResource: optionalString(request.subResource, 'request.subResource'),
    name: optionalString(request.name, 'request.name'),
    namespace: optionalString(request.namespace, 'request.namespace'),
    operation: operation as AdmissionRequest['operation'],
    userInfo: { username: userInfo.username, groups: groups as string[] },
    object: request.object ?? null,
    oldObject: request.oldObject ?? null,
    dryRun: request.dryRun === true,
  };
}

/** Reads the uid of a review that failed to parse, so an error can still echo it. */
export function uidOf(body: unknown): string | undefined {
  if (!isRecord(body) || !isRecord(body.request)) return undefined;
  return typeof body.request.uid === 'string' ? body.request.uid : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (!isRecord(value)) throw bad(`${what} must be a JSON object, got ${show(value)}`);
  return value;
}

function requiredString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw bad(`${what} is missing`);
  return value;
}

function optionalString(value: unknown, what: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw bad(`${what} must be a string, got ${show(value)}`);
  return value;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  // A whole body sent as a string would otherwise come back in the message.
  if (typeof value === 'string' && value.length > 60) return `${JSON.stringify(value.slice(0, 57))}...`;
  return JSON.stringify(value);
}

function bad(message: string): GuardError {
  return new GuardError('RG_ERR_BAD_REVIEW', message);
}
