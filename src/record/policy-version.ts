import { createHash } from 'node:crypto';
import type { Policy } from '../core/types.ts';

const versions = new WeakMap<Policy, string>();

/**
 * A policy's version: the first 12 hex digits of the SHA-256 of its decided content (the
 * policy without where it was read from), so that the same policy read from another file
 * keeps its version and any change to what it decides gives a new one.
 */
export function policyVersion(policy: Policy): string {
  let version = versions.get(policy);
  if (version === undefined) {
    const { source: _source, ...content } = policy;
    version = createHash('sha256').update(canonicalJson(content)).digest('hex').slice(0, 12);
    versions.set(policy, version);
  }
  return version;
}

/** JSON with object keys sorted, so that key order never changes a version. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
