import type { FreezeScope } from '../core/switches.ts';
import { reservedAnnotationChanges } from './interpret.ts';
import type { AdmissionRequest } from './review.ts';

/** The annotation an operator sets on a ServiceAccount or a Namespace to freeze its agents. */
export const FREEZE_ANNOTATION = 'replica-guard.io/freeze';

/** Whether a request writes a ServiceAccount or a Namespace: the objects a freeze annotation lives on. */
export function isSwitchResource(req: AdmissionRequest): boolean {
  return req.resource.group === '' && req.subResource === '' && (req.resource.resource === 'serviceaccounts' || req.resource.resource === 'namespaces');
}

function annotationsOf(o: unknown): Readonly<Record<string, string>> | undefined {
  if (typeof o !== 'object' || o === null) return undefined;
  const metadata = (o as { metadata?: unknown }).metadata;
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  const annotations = (metadata as { annotations?: unknown }).annotations;
  if (typeof annotations !== 'object' || annotations === null) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations)) if (typeof v === 'string') out[k] = v;
  return out;
}

/**
 * The `replica-guard.io/*` annotations a write adds, changes or removes, comparing the old
 * and the new object: an annotation map that disappears entirely (the last annotation
 * removed) removes every key it held. Empty for a DELETE, which takes the object whole.
 */
export function reservedChangesOf(req: AdmissionRequest): string[] {
  if (req.operation === 'DELETE' || req.operation === 'CONNECT') return [];
  const before = req.operation === 'CREATE' ? undefined : annotationsOf(req.oldObject);
  return reservedAnnotationChanges(before, annotationsOf(req.object));
}

/** What a write does to the freeze annotation. */
export type FreezeAnnotationChange =
  | { readonly type: 'none' }
  | { readonly type: 'set'; readonly scope: FreezeScope; readonly reason: string | undefined; readonly value: string }
  | { readonly type: 'removed'; readonly scope: FreezeScope };

const isFreezeValue = (v: string | undefined) => v !== undefined && v.trim() !== '' && v.trim().toLowerCase() !== 'false';

/**
 * Whether a write sets the freeze annotation (newly, or to another value) or removes it.
 * Any value but `false` or empty freezes; a value other than `true` is the reason. A
 * freeze annotation left as it was is no change: an unfreeze by the CLI must not be
 * undone by the next unrelated edit of the object.
 */
export function freezeAnnotationChange(req: AdmissionRequest): FreezeAnnotationChange {
  if (req.operation === 'DELETE' || req.operation === 'CONNECT') return { type: 'none' };
  const scope: FreezeScope =
    req.resource.resource === 'namespaces' ? { type: 'namespace', namespace: req.name } : { type: 'agent', namespace: req.namespace, name: req.name };
  const before = req.operation === 'CREATE' ? undefined : annotationsOf(req.oldObject)?.[FREEZE_ANNOTATION];
  const after = annotationsOf(req.object)?.[FREEZE_ANNOTATION];
  if (isFreezeValue(after) && after !== before) {
    const text = (after ?? '').trim();
    return { type: 'set', scope, reason: text.toLowerCase() === 'true' ? undefined : text, value: after ?? '' };
  }
  if (isFreezeValue(before) && !isFreezeValue(after)) return { type: 'removed', scope };
  return { type: 'none' };
}
