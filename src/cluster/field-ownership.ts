/**
 * Server-side apply ownership of a webhook configuration's fields. A restore is an
 * update, and the API server gives an updater ownership of every field it changed: the
 * guard would then own the declared fields it put back, and the chart's next
 * `helm upgrade` (helm 4 applies server-side, without forcing) would fail with a
 * conflict on each of them. Handing those fields back to the chart's apply manager keeps
 * helm and the guard out of each other's way.
 */

/** A `fieldsV1` set: field keys (`f:name`, `k:{...}`, `.`) to the set below them. */
export interface FieldSet {
  readonly [key: string]: FieldSet;
}

/** One `metadata.managedFields` entry, as served. */
export interface ManagedFieldsEntry {
  readonly manager?: string;
  readonly operation?: string;
  readonly apiVersion?: string;
  readonly time?: string;
  readonly fieldsType?: string;
  readonly fieldsV1?: FieldSet;
  readonly subresource?: string;
  readonly [key: string]: unknown;
}

/** The field manager the guard writes its configurations as. */
export const GUARD_FIELD_MANAGER = 'replica-guard';

const isCaBundle = (path: readonly string[]) => path.length >= 2 && path.at(-1) === 'f:caBundle' && path.at(-2) === 'f:clientConfig';

function nonEmpty(set: Record<string, FieldSet>): FieldSet | undefined {
  return Object.keys(set).length === 0 ? undefined : set;
}

/** Splits a set into what `keep` selects (with the sets below it) and the rest. */
function split(set: FieldSet, keep: (path: readonly string[]) => boolean, path: readonly string[] = []): { kept?: FieldSet; moved?: FieldSet } {
  const kept: Record<string, FieldSet> = {};
  const moved: Record<string, FieldSet> = {};
  for (const [key, below] of Object.entries(set)) {
    const at = [...path, key];
    if (keep(at)) kept[key] = below;
    else if (Object.keys(below).length === 0) moved[key] = below;
    else {
      const sub = split(below, keep, at);
      if (sub.kept) kept[key] = sub.kept;
      if (sub.moved) moved[key] = sub.moved;
    }
  }
  const k = nonEmpty(kept);
  const m = nonEmpty(moved);
  return { ...(k ? { kept: k } : {}), ...(m ? { moved: m } : {}) };
}

/** The union of two sets. */
export function unionOf(a: FieldSet, b: FieldSet): FieldSet {
  const out: Record<string, FieldSet> = { ...a };
  for (const [key, below] of Object.entries(b)) out[key] = key in out ? unionOf(out[key] ?? {}, below) : below;
  return out;
}

/**
 * The managed fields after handing what the guard's update entry owns over to the apply
 * entry that owns the webhooks (the chart's, as helm applied it), except the caBundle
 * when `keepCaBundle` (the guard sets it, the chart never declares it). Undefined when
 * there is nothing to hand over: no apply entry owns the webhooks (helm 3's client-side
 * apply, kubectl create: updates never conflict), or the guard owns nothing it must give.
 */
export function handedBack(entries: readonly ManagedFieldsEntry[], options: { readonly keepCaBundle: boolean }): ManagedFieldsEntry[] | undefined {
  const chart = entries.find((e) => e.operation === 'Apply' && e.fieldsV1 !== undefined && 'f:webhooks' in e.fieldsV1 && e.subresource === undefined);
  const guard = entries.find((e) => e.manager === GUARD_FIELD_MANAGER && e.operation === 'Update' && e.subresource === undefined);
  if (chart?.fieldsV1 === undefined || guard?.fieldsV1 === undefined) return undefined;
  const { kept, moved } = split(guard.fieldsV1, options.keepCaBundle ? isCaBundle : () => false);
  if (moved === undefined) return undefined;
  return entries.flatMap((e) => {
    if (e === chart) return [{ ...e, fieldsV1: unionOf(chart.fieldsV1 ?? {}, moved) }];
    if (e === guard) return kept === undefined ? [] : [{ ...e, fieldsV1: kept }];
    return [e];
  });
}
