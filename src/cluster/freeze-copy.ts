import { formatEntry, type FreezeScope, freezeKey, switchesDigest } from '../core/switches.ts';
import type { SwitchData, SwitchStore } from './switch-store.ts';

/** Where a freeze annotation was found. */
export type AnnotatedObject = (
  | { readonly kind: 'ServiceAccount'; readonly namespace: string; readonly name: string }
  | { readonly kind: 'Namespace'; readonly name: string }
) & {
  /** The object's UID: an object deleted and created again with the annotation freezes again. */
  readonly uid?: string | undefined;
};

/** The freeze an annotation on this object asks for. */
export function scopeOfAnnotated(o: AnnotatedObject): FreezeScope {
  return o.kind === 'Namespace' ? { type: 'namespace', namespace: o.name } : { type: 'agent', namespace: o.namespace, name: o.name };
}

/** The bookkeeping key that remembers which annotation value was copied already. */
export function copiedKey(o: AnnotatedObject): string {
  return o.kind === 'Namespace' ? `copied.namespace.${o.name}` : `copied.serviceaccount.${o.namespace}.${o.name}`;
}

/**
 * Copies an operator's `replica-guard.io/freeze` annotation into the switches, once per
 * annotation value: the switch map remembers what it copied (`copied.*` keys), so that an
 * unfreeze by the CLI is not undone by the annotation that is still there (on the next
 * edit of the object, or when a guard replica lists it again after a restart). A new
 * value of the annotation is a new request to freeze. Resolves with the freeze key and
 * whether anything was written; several replicas copying at once write once.
 */
export async function copyFreeze(
  store: SwitchStore,
  o: AnnotatedObject,
  value: string,
  by: string,
  at: Date,
): Promise<{ readonly key: string; readonly copied: boolean; readonly data: SwitchData }> {
  const key = freezeKey(scopeOfAnnotated(o));
  const marker = copiedKey(o);
  const digest = switchesDigest({ value, uid: o.uid ?? '' });
  let copied = false;
  const text = value.trim();
  const data = await store.update((current) => {
    if (current[marker] === digest) return undefined;
    copied = current[key] === undefined;
    const entry = formatEntry({ at: at.toISOString(), by, reason: text.toLowerCase() === 'true' ? undefined : text, source: 'annotation' });
    return { ...current, [marker]: digest, ...(copied ? { [key]: entry } : {}) };
  });
  return { key, copied, data };
}

/**
 * Forgets that an object's annotation was copied (it was removed): the same value set
 * again later is a new request to freeze. Leaves the freeze itself as it is.
 */
export async function forgetCopied(store: SwitchStore, o: AnnotatedObject): Promise<void> {
  const marker = copiedKey(o);
  await store.update((current) => {
    if (current[marker] === undefined) return undefined;
    const { [marker]: _forgotten, ...rest } = current;
    return rest;
  });
}
