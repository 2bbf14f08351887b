import type { NeedFact, Policy } from './types.ts';

/**
 * The need a policy states (`need.static`), bounded by `need.min` and `need.max`.
 * Without a static need the workload has no load signal: judged by caps alone, its
 * episodes unmeasured.
 */
export function staticNeed(policy: Policy): NeedFact {
  const need = policy.need;
  if (need.static === undefined) return { kind: 'unmeasured' };
  let value = need.static;
  if (need.min !== undefined) value = Math.max(value, need.min);
  if (need.max !== undefined) value = Math.min(value, need.max);
  return { kind: 'measured', value, source: 'static' };
}
