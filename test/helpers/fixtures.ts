import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where the recorded AdmissionReview requests live. */
export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/admission/', import.meta.url));

/** A Kubernetes object as a review carries it: only metadata is given a shape. */
export interface KubeObject {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

/** An AdmissionReview request body, as the apiserver sends it. */
export interface Review {
  apiVersion: string;
  kind: string;
  request: {
    uid: string;
    kind: { group: string; version: string; kind: string };
    resource: { group: string; version: string; resource: string };
    subResource?: string;
    name?: string;
    namespace?: string;
    operation: string;
    userInfo: { username: string; uid?: string; groups?: string[] };
    object: KubeObject | null;
    oldObject: KubeObject | null;
    dryRun?: boolean;
    options?: Record<string, unknown> | null;
    [key: string]: unknown;
  };
}

const cache = new Map<string, string>();

/** The path of a fixture file, by name without `.json`. */
export function fixturePath(name: string): string {
  return `${FIXTURE_DIR}${name}.json`;
}

/** A fresh, deep copy of a recorded review, by file name without `.json`. */
export function fixture(name: string): Review {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(fixturePath(name), 'utf8');
    cache.set(name, text);
  }
  return JSON.parse(text) as Review;
}

/** A path into a JSON value: dotted, or a list of segments for keys holding dots. */
export type JsonPath = string | readonly string[];

const segmentsOf = (path: JsonPath): readonly string[] => (typeof path === 'string' ? path.split('.') : path);

function isContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  return typeof value === 'object' && value !== null;
}

function child(container: Record<string, unknown> | unknown[], key: string): unknown {
  return Array.isArray(container) ? container[Number(key)] : container[key];
}

function assign(container: Record<string, unknown> | unknown[], key: string, value: unknown): void {
  if (Array.isArray(container)) container[Number(key)] = value;
  else container[key] = value;
}

/** Sets a value, creating missing objects on the way. */
export function setPath(target: unknown, path: JsonPath, value: unknown): void {
  const segments = segmentsOf(path);
  let cur: unknown = target;
  for (const [i, key] of segments.entries()) {
    if (!isContainer(cur)) throw new Error(`setPath: ${segments.slice(0, i).join('.')} is not an object`);
    if (i === segments.length - 1) {
      assign(cur, key, value);
      return;
    }
    let next = child(cur, key);
    if (!isContainer(next)) {
      next = {};
      assign(cur, key, next);
    }
    cur = next;
  }
}

/** Reads a value; undefined when any step is missing. */
export function getPath(target: unknown, path: JsonPath): unknown {
  let cur: unknown = target;
  for (const key of segmentsOf(path)) {
    if (!isContainer(cur)) return undefined;
    cur = child(cur, key);
  }
  return cur;
}

/** Removes a key, if present. */
export function deletePath(target: unknown, path: JsonPath): void {
  const segments = segmentsOf(path);
  const parent = getPath(target, segments.slice(0, -1));
  const last = segments[segments.length - 1];
  if (isContainer(parent) && !Array.isArray(parent) && last !== undefined) delete parent[last];
}

/** Identities of the recorded requests. */
export const AGENT = 'system:serviceaccount:agents:agent-1';
export const ADMIN = { username: 'admin', uid: 'admin-uid', groups: ['system:masters', 'system:authenticated'] };

/** Changes to a review; every change gets a new request uid unless one is given. */
export interface ReviewChanges {
  readonly uid?: string;
  /** `object.spec.replicas`; null removes the field (a Scale at 0 has `spec: {}`). */
  readonly replicas?: number | null;
  readonly oldReplicas?: number | null;
  readonly userInfo?: Review['request']['userInfo'];
  /** Also sets or clears `options.dryRun`, as the apiserver does. */
  readonly dryRun?: boolean;
  /** `object.metadata.resourceVersion` (and the old object's, as in a validating UPDATE). */
  readonly resourceVersion?: string;
  /** Annotations added to `object.metadata.annotations`. */
  readonly annotations?: Readonly<Record<string, string>>;
  /** Further values, by path under `request` (`object.spec.template.spec.serviceAccountName`). */
  readonly set?: readonly (readonly [JsonPath, unknown])[];
  /** Paths under `request` to remove. */
  readonly unset?: readonly JsonPath[];
}

/** A deep copy of `review` with the changes applied. */
export function modify(review: Review, changes: ReviewChanges = {}): Review {
  const r = JSON.parse(JSON.stringify(review)) as Review;
  const req = r.request;
  req.uid = changes.uid ?? randomUUID();
  const replicas = (which: 'object' | 'oldObject', value: number | null | undefined) => {
    if (value === undefined) return;
    if (value === null) deletePath(req, [which, 'spec', 'replicas']);
    else setPath(req, [which, 'spec', 'replicas'], value);
  };
  replicas('object', changes.replicas);
  replicas('oldObject', changes.oldReplicas);
  if (changes.userInfo) req.userInfo = { ...changes.userInfo };
  if (changes.dryRun !== undefined) {
    req.dryRun = changes.dryRun;
    if (changes.dryRun) setPath(req, ['options', 'dryRun'], ['All']);
    else deletePath(req, ['options', 'dryRun']);
  }
  if (changes.resourceVersion !== undefined) {
    setPath(req, ['object', 'metadata', 'resourceVersion'], changes.resourceVersion);
    if (req.oldObject) setPath(req, ['oldObject', 'metadata', 'resourceVersion'], changes.resourceVersion);
  }
  for (const [key, value] of Object.entries(changes.annotations ?? {})) {
    setPath(req, ['object', 'metadata', 'annotations', key], value);
  }
  for (const [path, value] of changes.set ?? []) setPath(req, path, value);
  for (const path of changes.unset ?? []) deletePath(req, path);
  return r;
}

/** A recorded review with changes: `review('deployment-scale-agent-10', { replicas: 7 })`. */
export function review(name: string, changes: ReviewChanges = {}): Review {
  return modify(fixture(name), changes);
}

/**
 * The recorded agent's Scale of Deployment `name` from one count to another; the object
 * and its old version carry `uid` (default `uid-NAME`), as the apiserver's Scale does.
 */
export function scaleReview(name: string, from: number, to: number, uid = `uid-${name}`): Review {
  return review('deployment-scale-agent-10', {
    oldReplicas: from,
    replicas: to,
    set: [
      ['name', name],
      ['object.metadata.name', name],
      ['oldObject.metadata.name', name],
      ['object.metadata.uid', uid],
      ['oldObject.metadata.uid', uid],
    ],
  });
}
