import { isDeepStrictEqual } from 'node:util';
import YAML from 'yaml';

/** The two kinds the guard keeps, as their API resources. */
export const CONFIGURATION_RESOURCES = {
  MutatingWebhookConfiguration: 'mutatingwebhookconfigurations',
  ValidatingWebhookConfiguration: 'validatingwebhookconfigurations',
} as const;

export type ConfigurationKind = keyof typeof CONFIGURATION_RESOURCES;

/** One webhook entry, as the API serves it: only `name` and `clientConfig` are read by shape. */
export interface WebhookEntry {
  readonly name: string;
  readonly clientConfig?: { readonly caBundle?: string; readonly [key: string]: unknown };
  readonly [key: string]: unknown;
}

/** A configuration as declared (the chart's desired state) or as served. */
export interface WebhookConfiguration {
  readonly apiVersion?: string;
  readonly kind: ConfigurationKind;
  readonly metadata: { readonly name: string; readonly resourceVersion?: string; readonly labels?: Readonly<Record<string, string>>; readonly [key: string]: unknown };
  readonly webhooks: readonly WebhookEntry[];
}

/** The label under which an operator takes a configuration over by hand. */
export const UNMANAGED_LABEL = 'replica-guard.io/unmanaged';

/**
 * Fields the chart never declares but whose server default is part of the protection: an
 * objectSelector would let an agent exempt its objects by labelling them, and matchPolicy
 * Exact would let it write through another API version.
 */
const IMPLIED: Readonly<Record<string, unknown>> = { objectSelector: {}, matchPolicy: 'Equivalent' };

/**
 * Parses the desired state (the chart's `webhooks.yaml`: one document per configuration).
 * @throws naming the document that is not a Mutating/ValidatingWebhookConfiguration with named webhooks.
 */
export function parseDesiredConfigurations(text: string): WebhookConfiguration[] {
  return YAML.parseAllDocuments(text).flatMap((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`document ${i + 1} does not parse: ${doc.errors[0]?.message}`);
    const value = doc.toJSON() as unknown;
    if (value === null || value === undefined) return [];
    if (!isConfiguration(value)) throw new Error(`document ${i + 1} is not a webhook configuration with named webhooks`);
    return [value];
  });
}

/** True when `value` has the shape of a configuration the guard keeps. */
export function isConfiguration(value: unknown): value is WebhookConfiguration {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { kind?: unknown; metadata?: { name?: unknown }; webhooks?: unknown };
  return (
    (v.kind === 'MutatingWebhookConfiguration' || v.kind === 'ValidatingWebhookConfiguration') &&
    typeof v.metadata?.name === 'string' &&
    (v.webhooks === undefined || (Array.isArray(v.webhooks) && v.webhooks.every((w: unknown) => typeof (w as { name?: unknown })?.name === 'string')))
  );
}

/**
 * How the served configuration differs from the declared one, as field paths
 * (`webhooks[validate.replica-guard.io].rules`): every field the declaration sets, the
 * implied defaults, the set of webhooks, and the caBundle when `caBundle` is given (the
 * guard manages certificates); empty when in sync.
 */
export function driftOf(desired: WebhookConfiguration, actual: WebhookConfiguration, caBundle: string | undefined): string[] {
  const drift: string[] = [];
  const served = new Map((actual.webhooks ?? []).map((w) => [w.name, w]));
  for (const want of desired.webhooks ?? []) {
    const at = `webhooks[${want.name}]`;
    const have = served.get(want.name);
    served.delete(want.name);
    if (have === undefined) {
      drift.push(`${at}: missing`);
      continue;
    }
    for (const [field, value] of Object.entries({ ...IMPLIED, ...want })) {
      if (field === 'clientConfig') continue;
      if (!isDeepStrictEqual(have[field] ?? IMPLIED[field], value)) drift.push(`${at}.${field}`);
    }
    const { caBundle: declared, ...wantClient } = want.clientConfig ?? {};
    const { caBundle: haveBundle, ...haveClient } = have.clientConfig ?? {};
    if (!isDeepStrictEqual(haveClient, wantClient)) drift.push(`${at}.clientConfig`);
    const wantBundle = caBundle ?? declared;
    if (wantBundle !== undefined && haveBundle !== wantBundle) drift.push(`${at}.clientConfig.caBundle`);
  }
  for (const extra of served.keys()) drift.push(`webhooks[${extra}]: not declared`);
  return drift;
}

/**
 * The served configuration with its webhooks put back as declared: declared fields
 * restored, server defaults of undeclared fields kept (except the implied ones), the
 * caBundle set when the guard manages it and kept as served otherwise.
 */
export function restoredConfiguration(desired: WebhookConfiguration, actual: WebhookConfiguration, caBundle: string | undefined): WebhookConfiguration {
  const served = new Map((actual.webhooks ?? []).map((w) => [w.name, w]));
  const webhooks = (desired.webhooks ?? []).map((want): WebhookEntry => {
    const have = served.get(want.name);
    const bundle = caBundle ?? want.clientConfig?.caBundle ?? have?.clientConfig?.caBundle;
    return {
      ...have,
      ...IMPLIED,
      ...want,
      clientConfig: { ...want.clientConfig, ...(bundle === undefined ? {} : { caBundle: bundle }) },
    };
  });
  return { ...actual, webhooks };
}

/** True when an operator has taken the configuration over (`replica-guard.io/unmanaged=true`). */
export function isUnmanaged(actual: WebhookConfiguration): boolean {
  return actual.metadata.labels?.[UNMANAGED_LABEL] === 'true';
}
