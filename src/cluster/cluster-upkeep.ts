import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import type { GuardConfig } from '../config.ts';
import { peersServe, readyPeers } from '../tls/peer-certificates.ts';
import { SecretCertificates } from '../tls/secret-certificates.ts';
import type { KubeConnection } from './kube-http.ts';
import { createReconcilerMetrics, WebhookReconciler } from './webhook-reconciler.ts';

/** What the guard keeps up on a cluster besides deciding: its certificates and its webhook configurations. */
export interface ClusterUpkeep {
  readonly certificates: SecretCertificates | undefined;
  readonly reconciler: WebhookReconciler | undefined;
  stop(): void;
}

/**
 * Starts the upkeep the configuration asks for. With `certificates.mode: self` and a
 * `certificates.secret`, the self-managed certificates are created or adopted and written
 * into `tls.dir` before this resolves (so the guard serves them from the start). With
 * `reconcile.configMap`, the reconciler keeps both configurations as declared (with
 * `reconcile.enabled`) and their caBundle (with self-managed certificates).
 */
export async function startClusterUpkeep(
  config: GuardConfig,
  deps: { readonly connection: KubeConnection; readonly logger: Logger; readonly registry: Registry; readonly clock: Clock },
): Promise<ClusterUpkeep> {
  const { connection, clock } = deps;
  const namespace = config.cluster.namespace;
  const dir = resolvePath(config.tls.dir);
  const stops: (() => void)[] = [];
  let certificates: SecretCertificates | undefined;
  let reconciler: WebhookReconciler | undefined;
  const configMap = config.reconcile.configMap;
  const selfManaged = config.certificates.mode === 'self' && config.certificates.secret !== undefined;

  if (configMap !== undefined && (config.reconcile.enabled || selfManaged)) {
    reconciler = new WebhookReconciler({
      connection,
      namespace,
      configMap,
      restore: config.reconcile.enabled,
      caBundle: () => certificates?.caBundle(),
      metrics: createReconcilerMetrics(deps.registry),
      logger: deps.logger.child({ component: 'webhook-configurations' }),
      // Long enough for a helm upgrade to write both configurations and their declaration.
      settleMs: 2000,
    });
  }
  const secret = config.certificates.secret;
  if (config.certificates.mode === 'self' && secret !== undefined) {
    const logger = deps.logger.child({ component: 'certificates' });
    const peers = config.certificates.peers;
    certificates = new SecretCertificates({
      connection,
      namespace,
      secretName: secret,
      dir,
      dnsNames: config.tls.dnsNames,
      ipAddresses: config.tls.ipAddresses,
      renewBeforeDays: config.certificates.renewBeforeDays,
      clock,
      logger,
      everyReplicaServes: async (ca) => {
        if (peers === '') {
          // No Service: this process is the only replica; what it serves is in the directory.
          const served = new X509Certificate(await readFile(resolvePath(dir, 'tls.crt'), 'utf8'));
          return served.checkIssued(ca) && served.verify(ca.publicKey);
        }
        const ready = await readyPeers(connection, namespace, peers, AbortSignal.timeout(10_000));
        const result = await peersServe(ready, ca, 5_000);
        if (!result.all) logger.info({ behind: result.behind }, 'the old CA stays in the bundle: these replicas do not serve the new certificate yet');
        return ready.length > 0 && result.all;
      },
      servedBundles: async () => reconciler?.servedCaBundles(),
    });
    await certificates.start();
    const certs = certificates;
    const timer = setInterval(() => {
      certs.tick().catch((err: unknown) => logger.error({ err }, 'the self-managed certificates could not be checked'));
    }, config.certificates.checkInterval);
    timer.unref();
    stops.push(() => clearInterval(timer));
  }
  if (reconciler !== undefined) stops.push(reconciler.start(config.reconcile.interval));
  return {
    certificates,
    reconciler,
    stop() {
      for (const stop of stops) stop();
    },
  };
}
