/**
 * Stable error codes. Each has the HTTP status the webhook answers with; codes that
 * end in a verdict (a deadline, a missing fact) are answered with 200 and a denial.
 * Codes never change meaning: dashboards, alerts and runbooks key on them.
 */
export const ERROR_CODES = {
  /** The body is not JSON. */
  RG_ERR_BAD_JSON: 400,
  /** The body is JSON but not an admission.k8s.io/v1 AdmissionReview request. */
  RG_ERR_BAD_REVIEW: 400,
  /** The object in the review does not have the shape its kind requires. */
  RG_ERR_BAD_OBJECT: 400,
  /** The body is larger than the configured limit. */
  RG_ERR_BODY_TOO_LARGE: 400,
  /** The body is not sent as application/json. */
  RG_ERR_BAD_CONTENT_TYPE: 400,
  /** No valid policy set has been loaded yet. */
  RG_ERR_NOT_READY: 503,
  /** The decision could not finish before the apiserver's timeout minus the margin. */
  RG_ERR_DEADLINE: 200,
  /** A fact the decision needs is unknown and the policy says to deny then. */
  RG_ERR_FACT_UNAVAILABLE: 200,
  /**
   * The shared ledger kept changing under every compare-and-swap retry (other replicas
   * writing for the same agent): the growth could not be recorded, so it is denied.
   */
  RG_ERR_LEDGER_CONFLICT: 200,
  /** An unexpected failure while deciding; the webhook's failurePolicy decides. */
  RG_ERR_INTERNAL: 500,
} as const;

/** One of the stable error codes. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** An error that carries a stable code and the HTTP status that goes with it. */
export class GuardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GuardError';
    this.code = code;
    this.status = ERROR_CODES[code];
  }
}
