import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { placeholderNodes } from './admission/node-eligibility.ts';
import { type ActivePolicies, createReviewHandler } from './admission/review-handler.ts';
import { buildApp, type GuardApp, type Readiness } from './app.ts';
import type { Clock } from './clock.ts';
import { InMemoryLedger } from './cluster/in-memory-ledger.ts';
import type { ClusterView } from './cluster/cluster-view.ts';
import { clusterLoadSources } from './cluster/cluster-load-sources.ts';
import { startClusterUpkeep } from './cluster/cluster-upkeep.ts';
import { InMemoryClusterView } from './cluster/in-memory-view.ts';
import type { KubeConnection } from './cluster/kube-http.ts';
import { type BypassMonitor, startBypassMonitor } from './cluster/bypass-monitor.ts';
import { KubeEventRecorder } from './cluster/event-recorder.ts';
import { LedgerHousekeeper } from './cluster/ledger-housekeeper.ts';
import { KubeLedger } from './cluster/kube-ledger.ts';
import { AllowanceLeases, leaseHolderName } from './cluster/allowance-leases.ts';
import { KubeView, mappedKind } from './cluster/kube-view.ts';
import { createLedgerMetrics, type Ledger } from './cluster/ledger.ts';
import { type LossRecorder, startLossRecorder } from './cluster/loss-recorder.ts';
import { type GuardConfig, riskSettingsOf } from './config.ts';
import type { LoadSource } from './load/load-source.ts';
import { PolicyLoadSource } from './load/policy-load-source.ts';
import { PrometheusLoadSource } from './load/prometheus-load-source.ts';
import { compileAgentMatcher } from './policy/agent-matcher.ts';
import { formatProblem } from './policy/policy-loader.ts';
import { PolicyStore } from './policy/policy-store.ts';
import { watchPolicyDirectory } from './policy/policy-watcher.ts';
import { createMetrics, type GuardMetrics } from './telemetry/metrics.ts';
import { createRiskMetrics } from './telemetry/risk-metrics.ts';
import { recorderOf } from './record/recorder-of-config.ts';
import { startSafetySwitches } from './safety-switches-wiring.ts';
import { ensureCertificates } from './tls/certificate-store.ts';
import { watchServingCertificate } from './tls/serving-reloader.ts';

/** A guard wired and ready to listen: `main.ts` listens and handles signals. */
export interface AssembledGuard {
  readonly app: GuardApp;
  readonly metrics: GuardMetrics;
  readonly readiness: () => Readiness;
  /** PEM of the CA that signed the serving certificate: a webhook configuration's caBundle. */
  readonly caCert: string;
  /** From now on: not ready, and each webhook answer asks the client to reconnect (elsewhere). */
  beginDrain(): void;
  /** Cuts the webhook connections still open after a drain's in-flight timeout. */
  forceClose(): void;
  /** Stops the policy watcher and closes both servers, waiting for the requests in flight. */
  close(): Promise<void>;
}

/** What the guard is wired with besides its configuration. */
export interface GuardDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  /** The cluster to watch and to keep the shared ledger in; absent: the embedded default. */
  readonly cluster?: KubeConnection | undefined;
  /** This replica's name in acknowledgements and Events (default: the host name, a pod's name). */
  readonly instance?: string | undefined;
}

/**
 * Wires the guard. Policies come from a watched directory and certificates from (or
 * generated into) a directory. With a cluster connection: a list/watch view of the
 * cluster, losses read from it, and a ledger shared through ConfigMaps in the guard's
 * namespace. Without one (the embedded default): a view built from the requests it sees,
 * nodes from configuration, an in-memory ledger.
 */
export async function assembleGuard(config: GuardConfig, deps: GuardDeps): Promise<AssembledGuard> {
  const { logger, clock } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'replica_guard_process_' });
  let kubeView: KubeView | undefined;
  const metrics = createMetrics(registry, () => kubeView);

  const store = new PolicyStore({ allowEmpty: config.policies.allowEmpty });
  let active: ActivePolicies | undefined;
  store.onChange((set) => {
    active = { policies: set.policies, matcher: compileAgentMatcher(set.policies) };
    metrics.policiesLoaded.set(set.policies.length);
    metrics.policySetLoadedTime.set(set.loadedAt.getTime() / 1000);
  });
  const policyDir = resolvePath(config.policies.dir);
  // The poll re-reads a broken directory every interval: report a rejection once per
  // distinct content, not once per poll.
  let lastRejected: string | undefined;
  // Why the last load was refused: a replica that never loaded a set says so in /readyz.
  let rejection: string | undefined;
  const watcher = watchPolicyDirectory(policyDir, {
    store,
    pollIntervalMs: config.policies.pollInterval,
    now: () => clock.now(),
    onResult: (result, load) => {
      if (result.outcome === 'rejected' && load.digest === lastRejected) return;
      lastRejected = result.outcome === 'rejected' ? load.digest : undefined;
      metrics.policyReloads.inc({ outcome: result.outcome });
      if (result.outcome === 'unchanged') return;
      for (const p of result.problems) {
        const line = formatProblem(p);
        if (p.severity === 'error') logger.error({ problem: p }, line);
        else logger.warn({ problem: p }, line);
      }
      const firstError = result.problems.find((p) => p.severity === 'error');
      rejection = result.outcome === 'rejected' ? (firstError ? `${result.reason}; ${formatProblem(firstError)}` : result.reason) : undefined;
      if (result.outcome === 'rejected') {
        metrics.policyReloadErrors.inc();
        logger.error({ dir: policyDir, reason: result.reason }, 'policy reload rejected; the last good set keeps deciding');
      } else if (result.outcome === 'applied') {
        logger.info({ dir: policyDir, policies: load.policies.length, files: load.files.length }, 'policy set loaded');
      }
    },
  });
  await watcher.reload();

  // On a cluster: the self-managed certificates are in place before they are read below.
  const upkeep = deps.cluster ? await startClusterUpkeep(config, { connection: deps.cluster, logger, registry, clock }) : undefined;
  const certs = await ensureCertificates(resolvePath(config.tls.dir), {
    dnsNames: config.tls.dnsNames,
    ipAddresses: config.tls.ipAddresses,
    now: clock.now(),
    logger,
  });
  metrics.certificateExpiry.set(certs.notAfter.getTime() / 1000);

  // Each policy's need comes from the source it names; one not configured here answers
  // unavailable (its onUnavailable decides) rather than a silent static number.
  const loadReporting = { clock, logger, errors: metrics.loadSourceErrors, logIntervalMs: config.load.failureLogInterval };
  const promConfig = config.load.prometheus;
  let prometheus: PrometheusLoadSource | undefined;
  if (promConfig !== undefined) {
    const token = promConfig.bearerTokenFile === undefined ? undefined : (await readFile(promConfig.bearerTokenFile, 'utf8')).trim();
    prometheus = new PrometheusLoadSource({
      url: promConfig.url,
      timeoutMs: promConfig.timeout,
      cacheTtlMs: promConfig.cacheTtl,
      failureTtlMs: promConfig.failureTtl,
      headers: token === undefined ? undefined : { authorization: `Bearer ${token}` },
      ...loadReporting,
    });
    logger.info({ endpoint: prometheus.endpoint, timeoutMs: promConfig.timeout }, 'need.prometheus policies query this endpoint');
  }
  // metrics-api and hpa need a cluster (the view's pods and HPAs, the apiserver's metrics
  // and access reviews): wired below in cluster mode; in the embedded default such
  // policies fall back to onUnavailable.
  let metricsApi: LoadSource | undefined;
  let hpa: LoadSource | undefined;

  // Episode keys must outlive the metrics window: a retry within it is then one episode.
  const ledgerLimits = { windowMs: Math.max(config.ledger.window, config.metrics.window) };
  let view: ClusterView;
  let ledger: Ledger;
  let leases: AllowanceLeases | undefined;
  const ledgerMetrics = createLedgerMetrics(registry);
  let losses: LossRecorder | undefined;
  if (deps.cluster) {
    kubeView = new KubeView({
      connection: deps.cluster,
      clock,
      logger: logger.child({ component: 'view' }),
      tuning: {
        pageSize: config.view.pageSize,
        bookmarkIntervalMs: config.view.bookmarkInterval,
        stallFactor: config.view.stallFactor,
        requestTimeoutMs: config.view.requestTimeout,
      },
      listConcurrency: config.view.listConcurrency,
      maxStalenessMs: config.view.maxStaleness,
      customResources: config.view.customResources,
      losses: { graceMs: config.view.lossGrace, settleMs: config.view.lossSettle },
      metrics: {
        cacheAge: metrics.viewCacheAge,
        objects: metrics.viewObjects,
        restarts: metrics.viewWatchRestarts,
        rejected: metrics.viewRejectedObjects,
      },
    });
    view = kubeView;
    const kubeLedger = new KubeLedger({
      connection: deps.cluster,
      namespace: config.cluster.namespace,
      clock,
      limits: ledgerLimits,
      maxEpisodes: config.ledger.maxEpisodes,
      maxAttempts: config.ledger.maxAttempts,
      readCacheTtlMs: config.ledger.readCacheTtl,
      maxCachedAgents: config.ledger.maxAgents,
      metrics: ledgerMetrics,
      logger: logger.child({ component: 'ledger' }),
    });
    ledger = kubeLedger;
    if (config.ledger.leases.instances > 0) {
      leases = new AllowanceLeases({
        ledger: kubeLedger,
        holder: leaseHolderName(deps.instance ?? hostname()),
        clock,
        logger: logger.child({ component: 'ledger' }),
        maxInstances: config.ledger.leases.instances,
        ttlMs: config.ledger.leases.ttl,
        idleMs: config.ledger.leases.idle,
        writeDelayMs: config.ledger.leases.writeDelay,
        metrics: ledgerMetrics,
      });
      leases.start();
    }
    losses = startLossRecorder({ source: kubeView.losses, view: kubeView, ledger, matcher: () => active?.matcher, clock, logger, metrics });
    ({ metricsApi, hpa } = clusterLoadSources({
      connection: deps.cluster,
      view: kubeView,
      ledger,
      metricsApi: {
        timeoutMs: config.load.metricsApi.timeout,
        cacheTtlMs: config.load.metricsApi.cacheTtl,
        failureTtlMs: config.load.metricsApi.failureTtl,
      },
      accessReviews: { ttlMs: config.view.accessReviewTtl, timeoutMs: config.view.accessReviewTimeout },
      ...loadReporting,
    }));
    kubeView.start();
  } else {
    view = new InMemoryClusterView(config.facts.nodes ?? placeholderNodes(config.facts.nodeCount), {
      maxWorkloads: config.facts.maxWorkloads,
      onEvict: () => metrics.viewEvictions.inc(),
    });
    ledger = new InMemoryLedger({
      ...ledgerLimits,
      maxEpisodes: config.ledger.maxEpisodes,
      maxAgents: config.ledger.maxAgents,
      metrics: ledgerMetrics,
    });
  }

  const housekeeper = new LedgerHousekeeper({
    ledger,
    view,
    clock,
    logger: logger.child({ component: 'ledger' }),
    intervalMs: config.ledger.housekeepingInterval,
    metrics: ledgerMetrics,
  });
  housekeeper.start();

  const loadSource = new PolicyLoadSource({ prometheus, metricsApi, hpa, ...loadReporting });

  const risk = createRiskMetrics(registry, {
    ledger,
    clock,
    settings: riskSettingsOf(config),
    maxAgents: config.metrics.maxAgents,
    cacheTtlMs: config.metrics.cacheTtl,
  });

  const recorder = recorderOf(config.record, { registry, clock, logger });
  const bypass: BypassMonitor | undefined =
    deps.cluster && config.doctor.enabled
      ? startBypassMonitor({
          connection: deps.cluster,
          policies: () => active?.policies,
          guardNamespace: config.cluster.namespace,
          registry,
          logger: logger.child({ component: 'doctor' }),
          clock,
          intervalMs: config.doctor.interval,
        })
      : undefined;
  const safety = await startSafetySwitches(config, { registry, clock, logger, cluster: deps.cluster, instance: deps.instance });

  const handleReview = createReviewHandler({
    policies: () => active,
    view,
    loadSource,
    ledger,
    clock,
    logger,
    metrics,
    scaleResources: config.scaleResources,
    customKinds: config.view.customResources.map(mappedKind),
    deadlineMarginMs: config.deadline.margin,
    defaultTimeoutMs: config.deadline.defaultTimeout,
    maxStalenessMs: config.view.maxStaleness,
    risk,
    recorder,
    switches: safety.gate,
    housekeeper,
    leases,
    recordDenialsAfterAnswer: deps.cluster !== undefined,
    events:
      deps.cluster && config.events.enabled
        ? new KubeEventRecorder({
            connection: deps.cluster,
            clock,
            logger: logger.child({ component: 'events' }),
            registry,
            perAgent: config.events.perAgentPerMinute,
            instance: deps.instance,
          })
        : undefined,
    onAdmitted: (change) => {
      const from = change.before?.steady ?? 0;
      const to = change.after?.steady;
      if (losses && change.ref.uid && to !== undefined && to < from) losses.noteOwnLowering(change.ref.uid, to);
    },
  });

  // Ready once the policies are loaded and the view has synced once; the view never makes
  // the guard unready again (every replica unready at once would lock all agents out):
  // a stale view makes its facts unknown instead.
  let draining = false;
  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (draining) reasons.push('draining: the guard is stopping');
    if (!active) reasons.push(`no valid policy set loaded from ${policyDir}${rejection === undefined ? '' : `: ${rejection}`}`);
    if (kubeView && !kubeView.synced()) reasons.push('the cluster view has not finished its first sync');
    if (!safety.watcher.loaded) reasons.push(`the safety switches have not been read from ${safety.watcher.where} yet`);
    return { ready: reasons.length === 0, reasons };
  };
  const app = buildApp({ handleReview, metrics, logger, readiness, tls: { key: certs.key, cert: certs.cert } });
  // While draining, a kept-alive connection would carry the API server's next call to this
  // replica again: closing it after each answer sends the next call to a ready endpoint.
  app.webhook.addHook('onSend', async (_request, reply) => {
    if (draining) void reply.header('connection', 'close');
  });
  // Rotated files (cert-manager's, the kubelet's Secret volume, the guard's own Secret
  // writer) are served to new connections without a restart.
  const tlsServer = app.webhook.server as unknown as TlsServer;
  const reloader = watchServingCertificate({
    dir: resolvePath(config.tls.dir),
    current: certs,
    intervalMs: config.certificates.reloadInterval,
    logger,
    apply: (pair) => {
      tlsServer.setSecureContext({ key: pair.key, cert: pair.cert });
      metrics.certificateExpiry.set(pair.notAfter.getTime() / 1000);
    },
  });
  return {
    app,
    metrics,
    readiness,
    caCert: certs.caCert,
    beginDrain() {
      draining = true;
    },
    forceClose() {
      app.webhook.server.closeAllConnections();
    },
    async close() {
      reloader.close();
      upkeep?.stop();
      await watcher.close();
      await safety.stop();
      bypass?.stop();
      losses?.stop();
      await kubeView?.stop();
      await Promise.all([app.webhook.close(), app.ops.close()]);
      // After the last decision: growth admitted from a lease is written and the lease given back.
      await leases?.close();
      // After the last decision: the records written after their answers, and what
      // decisions only read, are written before the process goes.
      await ledger.idle();
      await housekeeper.stop();
      await housekeeper.runOnce();
      await recorder?.close();
    },
  };
}
