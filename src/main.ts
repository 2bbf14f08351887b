import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import YAML from 'yaml';
import { systemClock } from './clock.ts';
import { configSchema, type GuardConfig } from './config.ts';
import type { KubeConnection } from './cluster/kube-http.ts';
import { drain } from './drain.ts';
import { assembleGuard } from './guard.ts';
import { loggerOptions } from './telemetry/logger.ts';

const SERVE_USAGE = `Usage: replica-guard serve [--config FILE] [--policies DIR] [--certs DIR]
  [--webhook-port N] [--ops-port N] [--log-level LEVEL]
  [--kubeconfig FILE [--context NAME] | --in-cluster]

Starts the webhooks (HTTPS, /mutate and /validate) and the metrics and probes
(HTTP, /metrics, /healthz, /readyz). With --kubeconfig or --in-cluster: a list/watch
view of the cluster and a ledger shared through ConfigMaps in the guard's namespace.
Without: an in-memory view built from the requests it sees. The configuration file is
YAML (see README); REPLICA_GUARD_CONFIG names one too. Flags override the file.`;

/**
 * The only place that reads the environment and the command line, listens and handles
 * signals. Resolves with an exit code when it fails to start; otherwise runs until a
 * SIGTERM or SIGINT, then closes both servers and resolves with 0.
 */
export async function runServe(argv: readonly string[]): Promise<number | undefined> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string' },
        policies: { type: 'string' },
        certs: { type: 'string' },
        'webhook-port': { type: 'string' },
        'ops-port': { type: 'string' },
        'log-level': { type: 'string' },
        kubeconfig: { type: 'string' },
        context: { type: 'string' },
        'in-cluster': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    process.stderr.write(`replica-guard serve: ${error instanceof Error ? error.message : String(error)}\n\n${SERVE_USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }

  const configPath = values.config ?? process.env.REPLICA_GUARD_CONFIG;
  let raw: Record<string, unknown> = {};
  if (configPath) {
    try {
      const parsed: unknown = YAML.parse(await readFile(configPath, 'utf8'));
      raw = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    } catch (error) {
      process.stderr.write(`replica-guard: cannot read configuration ${configPath}: ${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    }
  }
  const overrides = {
    policies: values.policies ? { ...(raw.policies as object), dir: values.policies } : raw.policies,
    tls: values.certs ? { ...(raw.tls as object), dir: values.certs } : raw.tls,
    webhook: values['webhook-port'] ? { ...(raw.webhook as object), port: Number(values['webhook-port']) } : raw.webhook,
    ops: values['ops-port'] ? { ...(raw.ops as object), port: Number(values['ops-port']) } : raw.ops,
    logLevel: values['log-level'] ?? raw.logLevel,
    cluster:
      values.kubeconfig || values.context || values['in-cluster']
        ? {
            ...(raw.cluster as object),
            ...stripUndefined({ kubeconfig: values.kubeconfig, context: values.context, inCluster: values['in-cluster'] }),
          }
        : raw.cluster,
  };
  const result = configSchema.safeParse({ ...raw, ...stripUndefined(overrides) });
  if (!result.success) {
    for (const issue of result.error.issues) {
      process.stderr.write(`replica-guard: configuration ${issue.path.join('.') || '(root)'}: ${issue.message}\n`);
    }
    return 1;
  }
  return serve(result.data);
}

async function serve(config: GuardConfig): Promise<number | undefined> {
  // Asynchronous: a decision never waits for stdout (a pipe to a slow log shipper would
  // otherwise stall every review). Lines queue in memory while a write is in flight, and
  // every exit path below flushes them; `exit` covers a process.exit from anywhere else.
  // Buffered up to 4 KiB or 100 ms: one write per burst of audit lines instead of one per
  // line, which on a busy guard cost more CPU than the decisions they describe.
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 });
  const logger = pino(loggerOptions(config.logLevel), destination);
  const flush = () => {
    try {
      destination.flushSync();
    } catch {
      // stdout is gone (a closed pipe): nothing left to write to.
    }
  };
  process.once('exit', flush);
  let guard;
  let cluster: KubeConnection | undefined;
  try {
    const { kubeconfig, context, inCluster } = config.cluster;
    if (kubeconfig !== undefined || inCluster) {
      // Loaded only when asked for: the embedded default needs no Kubernetes client.
      const { loadKubeConnection } = await import('./cluster/kube-config.ts');
      cluster = loadKubeConnection({ kubeconfig, context, inCluster });
      logger.info({ apiserver: cluster.baseUrl, namespace: config.cluster.namespace }, 'watching the cluster');
    }
    guard = await assembleGuard(config, { logger, clock: systemClock, cluster });
    const webhookAddress = await guard.app.webhook.listen({ host: config.webhook.host, port: config.webhook.port });
    const opsAddress = await guard.app.ops.listen({ host: config.ops.host, port: config.ops.port });
    logger.info({ webhook: webhookAddress, ops: opsAddress, ready: guard.readiness() }, 'replica-guard listening');
  } catch (err) {
    logger.fatal({ err }, 'replica-guard failed to start');
    await guard?.close().catch(() => undefined);
    cluster?.close?.();
    flush();
    return 1;
  }
  const running = guard;
  const signal = await nextSignal();
  const drainMs = config.drain.period;
  const inFlightTimeoutMs = config.drain.inFlightTimeout;
  logger.info({ signal, drainMs, inFlightTimeoutMs }, 'stopping');
  // A second signal cuts the drain short (an operator who means it).
  const cutShort = nextSignal().then((again) => logger.warn({ signal: again }, 'second signal: the drain is cut short'));
  await drain(running, { periodMs: drainMs, inFlightTimeoutMs }, {
    cutShort,
    onStep: (step) => {
      if (step === 'closing') logger.info('drain period over: closing, finishing the reviews in flight');
      if (step === 'forced') logger.warn({ inFlightTimeoutMs }, 'reviews still in flight after the timeout: connections cut');
    },
  });
  logger.info('stopped');
  cluster?.close?.();
  flush();
  return 0;
}

function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

if (import.meta.main) {
  // `npm start` runs `node src/main.ts serve`, the same words as `replica-guard serve`.
  const args = process.argv.slice(2);
  const code = await runServe(args[0] === 'serve' ? args.slice(1) : args);
  if (code !== undefined) process.exitCode = code;
}
