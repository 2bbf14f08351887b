import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { loadPolicyDirectory } from './policy-loader.ts';
import type { PolicySetLoad } from './policy-loader.ts';
import type { ApplyResult, PolicyStore } from './policy-store.ts';

/** Options of {@link watchPolicyDirectory}. */
export interface PolicyWatcherOptions {
  readonly store: PolicyStore;
  /** Reads the directory; injectable for tests. */
  readonly load?: (dir: string) => Promise<PolicySetLoad>;
  /** Quiet time after the last file-system event before reloading (one edit fires several events). */
  readonly debounceMs?: number;
  /** Interval of the backstop reload, for file systems where events go missing. */
  readonly pollIntervalMs?: number;
  /** Told of every reload, including unchanged ones: the caller logs and counts. Must not throw; if it does, the error is dropped. */
  readonly onResult?: (result: ApplyResult, load: PolicySetLoad) => void;
  readonly now: () => Date;
}

/** A running watch over a policy directory. */
export interface PolicyWatcher {
  /** Reloads now, after any reload in progress; resolves with its result. */
  reload(): Promise<ApplyResult>;
  /** Stops watching and polling; resolves once a reload in progress has finished. */
  close(): Promise<void>;
}

/**
 * Keeps `store` in step with the policy files in `dir`: loads at once, then reloads on
 * file-system events (debounced) and on a periodic poll.
 *
 * The directory is watched, not the files: Kubernetes updates a mounted ConfigMap by
 * swapping the `..data` symlink, after which a watch on a file follows the old inode
 * forever. The poll covers file systems where events are lost and a directory that
 * disappears and comes back (the watch is re-established once it exists again).
 * Nothing escapes a callback: a load that throws is reported to `onResult` as rejected.
 */
export function watchPolicyDirectory(dir: string, options: PolicyWatcherOptions): PolicyWatcher {
  const { store, load = loadPolicyDirectory, debounceMs = 200, pollIntervalMs = 30_000, onResult, now } = options;
  let closed = false;
  let fsWatcher: FSWatcher | undefined;
  /** `dev:ino` of the directory the watch is on, to notice a directory replaced by another. */
  let watchedIdentity: string | undefined;
  let debounceTimer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let again = false;
  let lastResult: ApplyResult | undefined;

  const stopWatching = (): void => {
    fsWatcher?.close();
    fsWatcher = undefined;
    watchedIdentity = undefined;
  };

  const scheduleReload = (): void => {
    if (closed) return;
    clearTimeout(debounceTimer);
    debounceTimer = setTimeout(requestReload, debounceMs);
    debounceTimer.unref();
  };

  const refreshWatch = async (): Promise<void> => {
    let identity: string;
    try {
      const s = await stat(dir);
      identity = `${s.dev}:${s.ino}`;
    } catch {
      stopWatching();
      return;
    }
    if (closed || (fsWatcher !== undefined && identity === watchedIdentity)) return;
    stopWatching();
    try {
      const w = watch(dir, { persistent: false }, scheduleReload);
      w.on('error', () => {
        // The directory went away or the watch broke: drop it, the poll re-establishes it.
        if (fsWatcher === w) stopWatching();
        scheduleReload();
      });
      fsWatcher = w;
      watchedIdentity = identity;
    } catch {
      // No watch possible here (gone meanwhile, or unsupported): the poll still runs.
    }
  };

  const reloadOnce = async (): Promise<void> => {
    await refreshWatch();
    let loaded: PolicySetLoad;
    try {
      loaded = await load(dir);
    } catch (error) {
      loaded = failedLoad(dir, error);
    }
    let result: ApplyResult;
    try {
      result = store.apply(loaded, now());
    } catch (error) {
      result = { outcome: 'rejected', reason: `applying the policies failed: ${errorMessage(error)}`, problems: loaded.problems };
    }
    lastResult = result;
    try {
      onResult?.(result, loaded);
    } catch {
      // onResult is the only channel for reporting; with it broken there is nowhere left to report to.
    }
  };

  function requestReload(): void {
    if (closed) return;
    if (inFlight !== undefined) {
      // Events during a load may have changed files it already read: load once more afterwards.
      again = true;
      return;
    }
    inFlight = (async () => {
      do {
        again = false;
        await reloadOnce();
      } while (again && !closed);
    })().finally(() => {
      inFlight = undefined;
    });
  }

  const pollTimer = setInterval(requestReload, pollIntervalMs);
  pollTimer.unref();
  requestReload();

  return {
    async reload() {
      if (closed) return { outcome: 'rejected', reason: 'the policy watcher is closed', problems: [] };
      if (inFlight !== undefined) again = true;
      else requestReload();
      await inFlight;
      return lastResult ?? { outcome: 'rejected', reason: 'no reload has completed', problems: [] };
    },
    async close() {
      closed = true;
      clearTimeout(debounceTimer);
      clearInterval(pollTimer);
      stopWatching();
      await inFlight;
    },
  };
}

function failedLoad(dir: string, error: unknown): PolicySetLoad {
  return {
    policies: [],
    problems: [{ severity: 'error', file: dir, document: null, path: '', message: `loading the policies failed: ${errorMessage(error)}` }],
    files: [],
    digest: '',
  };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
