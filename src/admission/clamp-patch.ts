import type { ClampTarget } from '../core/types.ts';
import type { JsonPatchOperation } from './decision.ts';

/**
 * The JSONPatch that lowers the steady count to `to`: `add` where the field is absent
 * (a Scale at 0 has `spec: {}`), `replace` where it is present, and companion fields
 * (an HPA's minReplicas) lowered too when they would exceed the new value.
 */
export function clampPatch(target: ClampTarget, to: number): JsonPatchOperation[] {
  const ops: JsonPatchOperation[] = [{ op: target.present ? 'replace' : 'add', path: target.path, value: to }];
  for (const companion of target.companions ?? []) {
    if (companion.value > to) ops.push({ op: 'replace', path: companion.path, value: to });
  }
  return ops;
}
