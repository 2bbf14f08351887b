import type { Decision } from './decision.ts';

/** The apiserver truncates longer warnings; keep ours readable whole. */
const MAX_WARNING_LENGTH = 256;
/** The apiserver keeps at most this many bytes of warnings per response. */
const MAX_WARNINGS_TOTAL = 4096;

/** An `admission.k8s.io/v1` AdmissionReview carrying a response. */
export interface AdmissionReviewResponse {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: {
    readonly uid: string;
    readonly allowed: boolean;
    readonly status?: {
      readonly code: number;
      readonly reason: string;
      readonly message: string;
      readonly details?: { readonly causes: readonly { reason: string; message: string; field?: string }[] };
    };
    readonly patchType?: 'JSONPatch';
    readonly patch?: string;
    readonly warnings?: readonly string[];
    readonly auditAnnotations?: Readonly<Record<string, string>>;
  };
}

/** The one place a decision becomes a response, and the one place the request's uid is set. */
export function admissionResponse(uid: string, decision: Decision): AdmissionReviewResponse {
  const warnings = boundedWarnings(decision.warnings);
  const extras = {
    ...(warnings.length > 0 ? { warnings } : {}),
    ...(Object.keys(decision.auditAnnotations).length > 0 ? { auditAnnotations: decision.auditAnnotations } : {}),
  };
  const envelope = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' } as const;
  switch (decision.kind) {
    case 'allowed':
      return { ...envelope, response: { uid, allowed: true, ...extras } };
    case 'patched':
      return {
        ...envelope,
        response: {
          uid,
          allowed: true,
          patchType: 'JSONPatch',
          patch: Buffer.from(JSON.stringify(decision.patch)).toString('base64'),
          ...extras,
        },
      };
    case 'denied':
      return {
        ...envelope,
        response: {
          uid,
          allowed: false,
          status: {
            code: decision.code,
            reason: decision.code === 403 ? 'Forbidden' : 'InternalError',
            message: decision.message,
            ...(decision.causes.length > 0
              ? {
                  details: {
                    causes: decision.causes.map((c) => ({
                      reason: c.reason,
                      message: c.message,
                      ...(c.field ? { field: c.field } : {}),
                    })),
                  },
                }
              : {}),
          },
          ...extras,
        },
      };
  }
}

function boundedWarnings(warnings: readonly string[]): string[] {
  const out: string[] = [];
  let total = 0;
  for (const w of warnings) {
    const text = w.length > MAX_WARNING_LENGTH ? `${w.slice(0, MAX_WARNING_LENGTH - 1)}…` : w;
    if (total + text.length > MAX_WARNINGS_TOTAL) break;
    total += text.length;
    out.push(text);
  }
  return out;
}
