import { hash } from 'node:crypto';

const SAFE_ID = /^[A-Za-z0-9._-]{1,40}$/;
const HASHED_ID = /^#[A-Za-z0-9_-]{22}$/;

/**
 * How an identifier is stored: short safe strings (Kubernetes UIDs) as they are, anything
 * else (episode keys, which embed the agent's name and the workload's path) as `#` and
 * 22 characters of its SHA-256 (132 bits). That bounds every entry's size whatever the
 * input, which the 1 MiB ConfigMap limit needs, and no JSON escaping can inflate it.
 *
 * Idempotent: a stored id comes back as it is, so that a caller can hash a key once per
 * request and pass the result to every function here (each hash costs microseconds on
 * the request path). No key this code builds starts with `#` (episode keys are JSON
 * arrays, workload keys contain `/`), so an unhashed id never passes for a hashed one.
 */
export function compactId(id: string): string {
  if (SAFE_ID.test(id) || HASHED_ID.test(id)) return id;
  return `#${hash('sha256', id, 'base64url').slice(0, 22)}`;
}

/** Whether a stored id is a hash (a path or a long id) rather than an identifier kept as it is (a UID). */
export function isHashedId(id: string): boolean {
  return HASHED_ID.test(id);
}
