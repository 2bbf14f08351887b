import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { placeholderNodes } from './admission/node-eligibility.ts';
import { type ActivePolicies, createReviewHandler } from './admission/review-handler.ts';
import { buildApp, type GuardApp, type Readiness } from './app.ts';
import type { Clock } from './clock.ts';
import { InMemoryLedger } from './cluster/in-memory-ledger.ts';
import { InMemoryClusterView } from './cluster/in-memory-view.ts';
import type { GuardConfig } from './config.ts';
import { PolicyLoadSource } from './load/policy-load-source.ts';
import { PrometheusLoadSource } from './load/prometheus-load-source.ts';
import { compileAgentMatcher } from './policy/agent-matcher.ts';
import { formatProblem } from './policy/policy-loader.ts';
import { PolicyStore } from './policy/policy-store.ts';
import { watchPolicyDirectory } from './policy/policy-watcher.ts';
import { createMetrics, type GuardMetrics } from './telemetry/metrics.ts';
import { ensureCertificates } from './tls/certificate-store.ts';

/** A guard wired and ready to listen: `main.ts` listens and handles signals. */
export interface AssembledGuard {
  readonly app: GuardApp;
  readonly metrics: GuardMetrics;
  readonly readiness: () => Readiness;
  /** PEM of the CA that signed the serving certificate: a webhook configuration's caBundle. */
  readonly caCert: string;
  /** Stops the policy watcher and closes both servers. */
  close(): Promise<void>;
}

/**
 * Wires the embedded default: policies from a watched directory, certificates from
 * (or generated into) a directory, an in-memory view of the cluster built from the
 * requests it sees, nodes and the need taken from configuration, an in-memory ledger.
 */
export async function assembleGuard(config: GuardConfig, deps: { logger: Logger; clock: Clock }): Promise<AssembledGuard> {
  const { logger, clock } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'replica_guard_process_' });
  const metrics = createMetrics(registry);

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
      if (result.outcome === 'rejected') {
        metrics.policyReloadErrors.inc();
        logger.error({ dir: policyDir, reason: result.reason }, 'policy reload rejected; the last good set keeps deciding');
      } else if (result.outcome === 'applied') {
        logger.info({ dir: policyDir, policies: load.policies.length, files: load.files.length }, 'policy set loaded');
      }
    },
  });
  await watcher.reload();

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
  const loadSource = new PolicyLoadSource({ prometheus, ...loadReporting });

  const nodes = config.facts.nodes ?? placeholderNodes(config.facts.nodeCount);
  const handleReview = createReviewHandler({
    policies: () => active,
    view: new InMemoryClusterView(nodes),
    loadSource,
    ledger: new InMemoryLedger({ windowMs: config.ledger.window, maxEpisodes: config.ledger.maxEpisodes }),
    clock,
    logger,
    metrics,
    scaleResources: config.scaleResources,
    deadlineMarginMs: config.deadline.margin,
    defaultTimeoutMs: config.deadline.defaultTimeout,
    maxStalenessMs: 60_000,
  });

  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (!active) reasons.push(`no valid policy set loaded from ${policyDir}`);
    return { ready: reasons.length === 0, reasons };
  };
  const app = buildApp({ handleReview, metrics, logger, readiness, tls: { key: certs.key, cert: certs.cert } });
  return {
    app,
    metrics,
    readiness,
    caCert: certs.caCert,
    async close() {
      await watcher.close();
      await Promise.all([app.webhook.close(), app.ops.close()]);
    },
  };
}
