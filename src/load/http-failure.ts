import type { LoadFailure } from './load-failures.ts';

/** The signal a lookup runs under: the caller's, cut short by the source's own deadline. */
export interface LookupSignals {
  readonly signal: AbortSignal;
  readonly deadline: AbortSignal;
}

/** Combines the caller's signal with a per-call deadline of `timeoutMs`. */
export function lookupSignals(callerSignal: AbortSignal, timeoutMs: number): LookupSignals {
  const deadline = AbortSignal.timeout(timeoutMs);
  return { signal: AbortSignal.any([callerSignal, deadline]), deadline };
}

/** The `code` of a Node or undici network error, looking through `cause` chains. */
export function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    const code: unknown = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The innermost message of an error chain: undici's own is only "fetch failed". */
function innermostMessage(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    if (current.message) message = current.message;
    current = current.cause;
  }
  return message;
}

/**
 * Classifies a request that threw. The signals say why an abort happened (the source's
 * deadline, or every caller gone); anything else thrown by the HTTP client is a failure
 * to reach the source.
 */
export function requestFailure(
  error: unknown,
  context: { readonly what: string; readonly signals: LookupSignals; readonly timeoutMs: number },
): LoadFailure {
  const { what, signals, timeoutMs } = context;
  if (signals.deadline.aborted) return { reason: 'timeout', detail: `${what} did not answer within ${timeoutMs} ms` };
  if (signals.signal.aborted) {
    return { reason: 'timeout', detail: `${what} did not answer before the admission deadline` };
  }
  const code = errorCode(error);
  const why = code === 'ECONNREFUSED' ? 'connection refused' : innermostMessage(error);
  return { reason: 'unreachable', detail: `${what} is unreachable: ${why}${code && code !== 'ECONNREFUSED' ? ` (${code})` : ''}` };
}

/** Reads a fetch response body as text, refusing more than `maxBytes` (a runaway answer). */
export async function readBodyCapped(res: Response, maxBytes: number): Promise<string | undefined> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Shortens a text for a log line or a reason (bodies of error pages can be long). */
export function excerpt(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max)}…`;
}
