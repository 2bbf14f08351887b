/** A fact behind a denial, in the shape of a Kubernetes StatusCause. */
export interface Cause {
  readonly reason: string;
  readonly message: string;
  readonly field?: string | undefined;
}

/** One JSONPatch (RFC 6902) operation, as the apiserver applies it. */
export interface JsonPatchOperation {
  readonly op: 'add' | 'replace';
  readonly path: string;
  readonly value: unknown;
}

interface DecisionBase {
  readonly warnings: readonly string[];
  /** Copied into the apiserver's audit log, under the webhook's name. */
  readonly auditAnnotations: Readonly<Record<string, string>>;
}

/**
 * A verdict before it becomes an AdmissionReview response. Built only through the
 * constructors below; the response UID is added in one place, `admissionResponse`.
 */
export type Decision =
  | (DecisionBase & { readonly kind: 'allowed' })
  | (DecisionBase & {
      readonly kind: 'denied';
      readonly code: number;
      readonly message: string;
      readonly causes: readonly Cause[];
    })
  | (DecisionBase & { readonly kind: 'patched'; readonly patch: readonly JsonPatchOperation[] });

/** Lets the request through unchanged. */
export function allowed(): Decision {
  return { kind: 'allowed', warnings: [], auditAnnotations: {} };
}

/**
 * Refuses the request. The code is 403 by default: never 429, which clients retry by
 * themselves, turning a denial into a loop.
 */
export function denied(message: string, causes: readonly Cause[] = [], code = 403): Decision {
  return { kind: 'denied', code, message, causes, warnings: [], auditAnnotations: {} };
}

/** Lets the request through with the object changed by a JSONPatch. */
export function patched(patch: readonly JsonPatchOperation[]): Decision {
  return { kind: 'patched', patch, warnings: [], auditAnnotations: {} };
}

/** Adds warnings, which kubectl and client libraries show to the caller. */
export function withWarnings(decision: Decision, warnings: readonly string[]): Decision {
  if (warnings.length === 0) return decision;
  return { ...decision, warnings: [...decision.warnings, ...warnings] };
}

/** Adds annotations for the apiserver's own audit log. */
export function withAuditAnnotations(decision: Decision, annotations: Readonly<Record<string, string>>): Decision {
  return { ...decision, auditAnnotations: { ...decision.auditAnnotations, ...annotations } };
}
