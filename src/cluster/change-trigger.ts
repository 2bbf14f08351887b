import type { Logger } from 'pino';
import { type KubeConnection, kubeFetch } from './kube-http.ts';

/** Options of {@link watchForChanges}. */
export interface ChangeTriggerOptions {
  readonly connection: KubeConnection;
  /** The collection to watch, e.g. `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations`. */
  readonly path: string;
  /** Only this object (a `metadata.name` field selector, which RBAC `resourceNames` allow). */
  readonly name: string;
  /** Called for every event; what changed is read by the caller. */
  readonly onChange: () => void;
  readonly logger: Logger;
  /** Longest wait between reconnections. */
  readonly maxBackoffMs?: number;
}

/**
 * Calls `onChange` whenever the object changes, through a watch that is re-established
 * when it ends or fails (with a capped backoff). It reports changes only; the caller reads
 * the object itself, so a missed event costs at most the caller's own polling interval.
 * Returns a function that stops watching.
 */
export function watchForChanges(options: ChangeTriggerOptions): () => void {
  const abort = new AbortController();
  const query = new URLSearchParams({ watch: 'true', fieldSelector: `metadata.name=${options.name}`, allowWatchBookmarks: 'false', timeoutSeconds: '300' });
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  const loop = async () => {
    let backoff = 500;
    while (!abort.signal.aborted) {
      try {
        const res = await kubeFetch(options.connection, `${options.path}?${query}`, { signal: abort.signal });
        if (res.status !== 200 || res.body === null) {
          options.logger.warn({ path: options.path, status: res.status }, 'cannot watch; changes are found by polling alone until it can');
          await res.body?.cancel();
        } else {
          backoff = 500;
          await readEvents(res.body, options.onChange);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        options.logger.debug({ err, path: options.path }, 'watch ended');
      }
      await sleep(backoff, abort.signal);
      backoff = Math.min(backoff * 2, maxBackoff);
    }
  };
  void loop();
  return () => abort.abort();
}

async function readEvents(body: ReadableStream<Uint8Array>, onChange: () => void): Promise<void> {
  const decoder = new TextDecoder();
  let partial = '';
  for await (const chunk of body) {
    partial += decoder.decode(chunk, { stream: true });
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    if (lines.some((l) => l.trim() !== '')) onChange();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
