import { MAX_COUNT, MAX_TIME_MS, MINUTE_MS } from './limits.ts';
import type { MinuteBucket } from './state.ts';

/**
 * Checks for reading a serialised state, shared by every collection's reader. A reader
 * answers `undefined` for an entry of the wrong shape, so that bad entries are dropped
 * one by one and the rest of the state survives.
 */

/** A JSON object's fields, not yet checked. */
export type Fields = Record<string, unknown>;

/** True for a JSON object (not null, not an array). */
export const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);
/** What `compactId` produces: a short safe string, or `#` and a hash. Part of the format's contract. */
const STORED_ID = /^#?[A-Za-z0-9._-]{1,40}$/;
/** True for an identifier as the state stores it. */
export const isId = (v: unknown): v is string => typeof v === 'string' && STORED_ID.test(v);
/** True for a whole number from 0 to `max`. */
export const isCount = (v: unknown, max = MAX_COUNT): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max;
/** True for epoch milliseconds a Date can hold. */
export const isTime = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_TIME_MS;

/**
 * The readable entries of the list in `raw[field]` (none when absent). A value that is
 * not a list, and entries that `read` rejects, are reported in `problems` and dropped.
 */
export function readList<T>(raw: Fields, field: string, read: (v: Fields) => T | undefined, problems: string[]): T[] {
  const value = raw[field];
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    problems.push(`${field}: not a list; ignored`);
    return [];
  }
  const out: T[] = [];
  let bad = 0;
  for (const item of value) {
    const parsed = isObject(item) ? read(item) : undefined;
    if (parsed === undefined) bad++;
    else out.push(parsed);
  }
  if (bad > 0) problems.push(`${field}: ${bad} unreadable entr${bad === 1 ? 'y' : 'ies'} dropped`);
  return out;
}

/** The entries sorted by minute, in place: a writer elsewhere may not have kept the order. */
export const byMinute = <T extends { readonly minute: number }>(items: T[]): T[] => items.sort((a, b) => a.minute - b.minute);

/** A rate or loss bucket, or undefined when it is not one. */
export function readMinuteBucket(v: Fields): MinuteBucket | undefined {
  return isCount(v.minute, MAX_TIME_MS / MINUTE_MS) && isCount(v.instances, Number.MAX_SAFE_INTEGER)
    ? { minute: v.minute, instances: v.instances }
    : undefined;
}
