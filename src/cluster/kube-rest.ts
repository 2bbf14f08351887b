import { type KubeConnection, kubeFetch } from './kube-http.ts';

/** An answer of the API: the status and the parsed body (text when it is not JSON). */
export interface KubeAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** The path of a resource, a named object, or one of its subresources. */
export function resourcePath(
  r: { readonly group: string; readonly version: string; readonly resource: string },
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const named = name === undefined ? '' : `/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}`;
  return `${base}${ns}/${r.resource}${named}`;
}

/** One JSON request to the API server; throws only when there is no answer (with the method and path in the message). */
export async function kubeJson(
  connection: KubeConnection,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
  caller?: AbortSignal,
): Promise<KubeAnswer> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = caller ? AbortSignal.any([caller, timeout]) : timeout;
  try {
    const res = await kubeFetch(
      connection,
      path,
      body === undefined
        ? { method, signal }
        : { method, signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
    );
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      return { status: res.status, body: text };
    }
  } catch (err) {
    const why = timeout.aborted ? `timed out after ${timeoutMs} ms` : (err as Error).message;
    throw new Error(`${method} ${path} failed: ${why}`, { cause: err });
  }
}

/** The message of a Status answer, or the start of the body. */
export function answerMessage(answer: KubeAnswer): string {
  const b = answer.body;
  if (typeof b === 'object' && b !== null && typeof (b as { message?: unknown }).message === 'string') return (b as { message: string }).message;
  return String(typeof b === 'string' ? b : JSON.stringify(b)).slice(0, 200);
}

/** Fails with the API's message unless the status is one of `ok`. */
export function expectStatus(answer: KubeAnswer, ok: readonly number[], what: string): void {
  if (!ok.includes(answer.status)) throw new Error(`${what} answered HTTP ${answer.status}: ${answerMessage(answer)}`);
}
