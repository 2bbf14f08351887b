import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createSwitchGate, type SwitchGate } from './admission/safety-switches.ts';
import type { Clock } from './clock.ts';
import { hostname } from 'node:os';
import { FileSwitchStore } from './cluster/file-switch-store.ts';
import { FreezeAnnotationWatcher } from './cluster/freeze-annotation-watcher.ts';
import { AckPublisher } from './cluster/switch-ack.ts';
import type { KubeConnection } from './cluster/kube-http.ts';
import { KubeSwitchStore, type SwitchStore } from './cluster/switch-store.ts';
import { SwitchWatcher } from './cluster/switch-watcher.ts';
import type { GuardConfig } from './config.ts';
import { NO_SWITCHES } from './core/switches.ts';
import { createSwitchMetrics } from './telemetry/switch-metrics.ts';

/** The safety switches of one guard: the watcher that keeps them and the gate the review handler asks. */
export interface SafetySwitchesWiring {
  readonly watcher: SwitchWatcher;
  readonly gate: SwitchGate;
  /** Stops reading the switches and watching for freeze annotations. */
  stop(): Promise<void>;
}

/**
 * Wires and starts the safety switches: on a cluster the switch ConfigMap in the guard's
 * namespace, read with the guard's own credentials; on the embedded default the file
 * `switches.file`. Both are read every `switches.pollInterval`; on a cluster, ServiceAccounts
 * and Namespaces are watched for freeze annotations to copy. Resolves after the first
 * read (which never throws: a failed one leaves the guard unready until a read succeeds).
 */
export async function startSafetySwitches(
  config: Pick<GuardConfig, 'switches' | 'cluster'>,
  deps: { registry: Registry; clock: Clock; logger: Logger; cluster?: KubeConnection | undefined; instance?: string | undefined },
): Promise<SafetySwitchesWiring> {
  const store: SwitchStore = deps.cluster
    ? new KubeSwitchStore({ connection: deps.cluster, namespace: config.cluster.namespace })
    : new FileSwitchStore(config.switches.file);
  const logger = deps.logger.child({ component: 'switches' });
  let watcher: SwitchWatcher | undefined;
  const metrics = createSwitchMetrics(
    deps.registry,
    () => watcher?.current() ?? NO_SWITCHES,
    () => deps.clock.now().getTime(),
  );
  // On a cluster each replica acknowledges what it applies, so a shutdown can wait for all of them.
  const ack = deps.cluster
    ? new AckPublisher({ connection: deps.cluster, namespace: config.cluster.namespace, instance: deps.instance ?? hostname(), clock: deps.clock, logger })
    : undefined;
  watcher = new SwitchWatcher({
    store,
    clock: deps.clock,
    logger,
    intervalMs: config.switches.pollInterval,
    metrics,
    onApplied: ack ? (data) => ack.applied(data) : undefined,
  });
  watcher.start();
  await watcher.refresh();
  // On a cluster, an operator's freeze annotation is seen by a watch, whoever the webhooks are called for.
  const annotations = deps.cluster
    ? new FreezeAnnotationWatcher({ connection: deps.cluster, store, clock: deps.clock, logger, onWritten: (data) => watcher?.adopt(data) })
    : undefined;
  annotations?.start();
  const running = watcher;
  return {
    watcher: running,
    gate: createSwitchGate({ watcher: running, store, clock: deps.clock, logger, metrics }),
    async stop() {
      await Promise.all([running.stop(), annotations?.stop()]);
    },
  };
}
