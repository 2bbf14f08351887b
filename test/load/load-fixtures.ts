import { Counter, Registry } from 'prom-client';
import type { Policy, WorkloadRef } from '../../src/core/types.ts';
import type { LoadErrorCounter } from '../../src/load/load-failures.ts';
import type { NeedQuery } from '../../src/load/load-source.ts';

/** The error counter the lead registers in metrics.ts, on a registry of its own. */
export function freshErrorCounter(): { errors: LoadErrorCounter; registry: Registry } {
  const registry = new Registry();
  const errors = new Counter({
    name: 'replica_guard_load_source_errors_total',
    help: 'Failed load lookups by source and reason.',
    labelNames: ['source', 'reason'] as const,
    registers: [registry],
  });
  return { errors, registry };
}

/** The counter's value for one source and reason (0 when never incremented). */
export async function errorCount(errors: LoadErrorCounter, source: string, reason: string): Promise<number> {
  const data = await errors.get();
  return data.values.find((v) => v.labels.source === source && v.labels.reason === reason)?.value ?? 0;
}

/** A policy with the given `need`, in the shape the loader produces. */
export function needPolicy(need: Partial<Policy['need']>, name = 'load-policy'): Policy {
  return {
    name,
    mode: 'enforce',
    agents: { serviceAccounts: ['agents:*'], users: [], groups: [] },
    need: { onUnavailable: 'hold', ...need },
    limits: {},
    source: { file: 'inline.yaml', document: 1 },
  };
}

export const WEB: WorkloadRef = { group: 'apps', kind: 'Deployment', namespace: 'shop', name: 'web', uid: 'uid-web' };

/** A need query for `ref` (default shop/web) at `current` instances. */
export function needQuery(policy: Policy, current: number, ref: WorkloadRef = WEB): NeedQuery {
  return { ref, currentSteady: current, policy };
}

/** A signal that never fires. */
export const NEVER = new AbortController().signal;
