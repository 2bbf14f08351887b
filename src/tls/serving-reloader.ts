import { X509Certificate, createPrivateKey } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { certificatePaths } from './certificate-store.ts';

/** The serving certificate and key, as read from tls.crt and tls.key. */
export interface ServingPair {
  readonly cert: string;
  readonly key: string;
  /** When the leaf certificate expires. */
  readonly notAfter: Date;
}

/** Options of {@link watchServingCertificate}. */
export interface ServingReloaderOptions {
  /** The directory holding tls.crt and tls.key. */
  readonly dir: string;
  /** What is served now: a pair with the same text is not applied again. */
  readonly current: { readonly cert: string; readonly key: string };
  /** How often the files are re-read besides the directory's change events. */
  readonly intervalMs: number;
  /** Serves the new pair (a TLS server's setSecureContext). */
  readonly apply: (pair: ServingPair) => void;
  readonly logger: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** A running reloader. */
export interface ServingReloader {
  /** Reads the files now; resolves with true when a new pair was applied. */
  check(): Promise<boolean>;
  close(): void;
}

/**
 * Serves rotated certificate files without a restart: cert-manager, the kubelet (which
 * swaps a Secret volume's `..data` symlink) or the guard's own Secret writer replace
 * tls.crt and tls.key, and new connections get the new pair. A pair that does not belong
 * together (a writer between its two files) is skipped until it does, so the pair in
 * service is never replaced by a broken one.
 */
export function watchServingCertificate(options: ServingReloaderOptions): ServingReloader {
  const paths = certificatePaths(options.dir);
  let served = `${options.current.cert}\u0000${options.current.key}`;
  let lastProblem: string | undefined;
  let running: Promise<boolean> | undefined;

  const read = async (): Promise<boolean> => {
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([readFile(paths.cert, 'utf8'), readFile(paths.key, 'utf8')]);
    } catch (err) {
      report(`cannot read ${paths.cert} and ${paths.key}: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
    if (`${cert}\u0000${key}` === served) return false;
    const checked = checkPair(cert, key);
    if (typeof checked === 'string') {
      report(checked);
      return false;
    }
    options.apply({ cert, key, notAfter: checked });
    served = `${cert}\u0000${key}`;
    lastProblem = undefined;
    options.logger.info({ dir: options.dir, notAfter: checked.toISOString() }, 'serving a new TLS certificate');
    return true;
  };
  const report = (problem: string) => {
    if (problem === lastProblem) return;
    lastProblem = problem;
    options.logger.warn({ dir: options.dir, problem }, 'the TLS files changed but cannot be served; the current certificate stays');
  };
  // One read at a time: change events come in bursts. A check asked for while a read runs
  // reads once more after it, since that read may have started before the files changed.
  let again: Promise<boolean> | undefined;
  const check = (): Promise<boolean> => {
    if (running === undefined) {
      running = read().finally(() => {
        running = undefined;
      });
      return running;
    }
    again ??= running.then(
      () => {
        again = undefined;
        return check();
      },
      () => {
        again = undefined;
        return check();
      },
    );
    return again;
  };

  const timer = setInterval(() => void check(), options.intervalMs);
  timer.unref();
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(options.dir, () => void check());
    watcher.on('error', () => watcher?.close());
  } catch {
    // No change events on this file system: the interval alone reloads.
  }
  return {
    check,
    close() {
      clearInterval(timer);
      watcher?.close();
    },
  };
}

/** The leaf's expiry when the key belongs to the first certificate of `cert`; otherwise the problem. */
function checkPair(cert: string, key: string): Date | string {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    return `tls.crt cannot be parsed: ${err instanceof Error ? err.message : String(err)}`;
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(key))) return 'tls.key does not belong to tls.crt';
  } catch (err) {
    return `tls.key cannot be parsed: ${err instanceof Error ? err.message : String(err)}`;
  }
  return leaf.validToDate;
}
