import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { FREEZE_ANNOTATION } from '../admission/freeze-annotations.ts';
import { type AnnotatedObject, copiedKey, copyFreeze, forgetCopied } from './freeze-copy.ts';
import type { KubeConnection } from './kube-http.ts';
import { ListWatch, type ObjectEventType, type RawObject } from './list-watch.ts';
import type { SwitchData, SwitchStore } from './switch-store.ts';

export interface FreezeAnnotationWatcherOptions {
  readonly connection: KubeConnection;
  readonly store: SwitchStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Told of switch data this process wrote, so the replica applies it at once. */
  readonly onWritten?: ((data: SwitchData) => void) | undefined;
}

const isFreezeValue = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '' && v.trim().toLowerCase() !== 'false';

/**
 * Watches ServiceAccounts and Namespaces for the `replica-guard.io/freeze` annotation and
 * copies each into the switches (once per value and object, see `copyFreeze`). This sees
 * an operator's `kubectl annotate` whatever the webhooks are configured to send (they may
 * see agents only), and one made while no guard was running. Removing the annotation
 * only forgets the copy; the freeze stays until `replica-guard unfreeze`.
 */
export class FreezeAnnotationWatcher {
  readonly #reflectors: ListWatch[];
  /** Objects whose annotation this process has seen, by copied key, with the value. */
  readonly #seen = new Map<string, string>();
  readonly options: FreezeAnnotationWatcherOptions;

  constructor(options: FreezeAnnotationWatcherOptions) {
    this.options = options;
    const sink = (kind: 'ServiceAccount' | 'Namespace') => ({
      apply: (type: ObjectEventType, object: RawObject) => this.#apply(kind, type, object),
    });
    this.#reflectors = (['serviceaccounts', 'namespaces'] as const).map(
      (resource) =>
        new ListWatch({
          connection: options.connection,
          resource: { group: '', version: 'v1', resource },
          sink: sink(resource === 'namespaces' ? 'Namespace' : 'ServiceAccount'),
          clock: options.clock,
          logger: options.logger,
        }),
    );
  }

  start(): void {
    for (const r of this.#reflectors) r.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.#reflectors.map((r) => r.stop()));
  }

  #apply(kind: 'ServiceAccount' | 'Namespace', type: ObjectEventType, raw: RawObject): void {
    const meta = raw.metadata ?? {};
    const name = meta.name ?? '';
    const object: AnnotatedObject =
      kind === 'Namespace' ? { kind, name, uid: meta.uid } : { kind, namespace: meta.namespace ?? '', name, uid: meta.uid };
    const seenKey = copiedKey(object);
    const annotations = (meta.annotations ?? {}) as Record<string, unknown>;
    const value = type === 'DELETED' ? undefined : annotations[FREEZE_ANNOTATION];
    const { store, clock, logger } = this.options;
    if (isFreezeValue(value)) {
      if (this.#seen.get(seenKey) === `${meta.uid}|${value}`) return;
      this.#seen.set(seenKey, `${meta.uid}|${value}`);
      copyFreeze(store, object, value, `annotation on ${kind} ${'namespace' in object ? `${object.namespace}/` : ''}${name}`, clock.now())
        .then(({ key, copied, data }) => {
          this.options.onWritten?.(data);
          if (copied) logger.info({ audit: { switch: key, action: 'set', source: 'annotation', object } }, 'freeze annotation copied into the safety switches');
        })
        .catch((err: unknown) => {
          this.#seen.delete(seenKey);
          logger.error({ err, object }, 'could not copy a freeze annotation into the safety switches; retried at the next change');
        });
      return;
    }
    if (type !== 'DELETED' && this.#seen.delete(seenKey)) {
      forgetCopied(store, object).catch((err: unknown) => logger.warn({ err, object }, 'could not forget a copied freeze annotation'));
    }
  }
}
