import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { policy } from '../helpers/guard.ts';
import { CHART_DIR, helm, type HelmRun, requireHelm } from '../helpers/helm.ts';
import { httpGet } from '../helpers/process.ts';
import { parseExposition } from '../helpers/telemetry.ts';
import { type ClusterGuard, launchGuard } from './cluster-guard.ts';
import { ADMIN, ControlPlane, type Identity } from './control-plane.ts';
import { grantAgentsWorkloadAccess } from './workloads.ts';

/** The release the chart tests install, and the name prefix of its objects. */
export const RELEASE = 'rg';
export const FULLNAME = 'rg-replica-guard';
export const RELEASE_NAMESPACE = 'replica-guard';

/** A test API server for the chart's tests, with a scratch directory. */
export interface ChartPlane {
  readonly plane: ControlPlane;
  readonly dir: string;
  /** Stops the API server and removes the directory. */
  stop(): Promise<void>;
}

/**
 * Checks for helm, starts the API server knowing `identities`, creates the `agents`
 * namespace and lets its service accounts write workloads (the guard holds them back).
 */
export async function startChartPlane(identities: readonly Identity[]): Promise<ChartPlane> {
  await requireHelm();
  const plane = await ControlPlane.start(identities);
  await plane.ensureNamespace('agents');
  await grantAgentsWorkloadAccess(plane, ['agents']);
  const dir = await mkdtemp(join(tmpdir(), 'rg-chart-'));
  return {
    plane,
    dir,
    async stop() {
      await plane.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `helm <command> rg charts/replica-guard -n replica-guard ...` against the test API server, as the admin. */
export function helmRelease(plane: ControlPlane, command: 'install' | 'upgrade', args: readonly string[]): Promise<HelmRun> {
  return helm([command, RELEASE, CHART_DIR, '--namespace', RELEASE_NAMESPACE, '--kubeconfig', plane.kubeconfigPath(ADMIN), ...(command === 'install' ? ['--create-namespace'] : []), ...args]);
}

/**
 * The values of a url-mode install for a guard on loopback `port`: agents are the service
 * accounts of the `agents` namespace, under an enforcing policy (need 3, headroom 1, at
 * most 8 per family) written to `dir`.
 */
export async function urlModeValues(dir: string, port: number): Promise<string[]> {
  const policyFile = join(dir, 'agents.yaml');
  await writeFile(
    policyFile,
    policy('chart-agents', { mode: 'enforce', agents: { serviceAccounts: ['agents:*'] }, need: { static: 3, onUnavailable: 'deny' }, limits: { headroom: 1, perFamily: 8 } }),
  );
  return ['--set', `webhook.url=https://127.0.0.1:${port}`, '--set', 'agents.namespaces={agents}', '--set-file', `policies.files.agents=${policyFile}`];
}

/** `helm uninstall rg` against the test API server. */
export function helmUninstall(plane: ControlPlane): Promise<HelmRun> {
  return helm(['uninstall', RELEASE, '--namespace', RELEASE_NAMESPACE, '--kubeconfig', plane.kubeconfigPath(ADMIN)]);
}

/** Options of {@link startChartGuard}. */
export interface ChartGuardOptions {
  /** The loopback port the webhook listens on: the port of the chart's `webhook.url`; 0 for any. */
  readonly webhookPort: number;
  /** Wait for /readyz (default); false for a guard expected never to turn ready. */
  readonly waitReady?: boolean;
  /** The address the webhook listens on and its certificate covers; 127.0.0.1 by default. */
  readonly host?: string;
  /** A certificate directory to serve (copied into the guard's TLS directory), as `replica-guard certs create` makes one. */
  readonly certs?: string;
}

/**
 * Runs the guard outside the cluster as the chart declared it: its configuration is the
 * one of the chart's rendered config ConfigMap, read back from the API server, with only
 * what running outside changes (listening on loopback, the TLS and policy directories,
 * and 127.0.0.1 in the serving certificate: the API server calls `webhook.url` on
 * loopback), its policies those of the chart's policies ConfigMap, and its identity
 * `identity` (a TokenRequest token of the chart's ServiceAccount, for instance).
 */
export async function startChartGuard(plane: ControlPlane, identity: Identity, options: ChartGuardOptions): Promise<ClusterGuard> {
  const configMap = (name: string) => plane.must<{ data: Record<string, string> }>(ADMIN, `/api/v1/namespaces/${RELEASE_NAMESPACE}/configmaps/${name}`);
  const chartConfig = YAML.parse((await configMap(`${FULLNAME}-config`)).data['config.yaml'] ?? '') as Record<string, Record<string, unknown>>;
  const policyFiles = (await configMap(`${FULLNAME}-policies`)).data;
  const dir = await mkdtemp(join(tmpdir(), 'rg-chart-guard-'));
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  for (const [file, text] of Object.entries(policyFiles)) await writeFile(join(policyDir, file), text);
  if (options.certs !== undefined) await cp(options.certs, join(dir, 'certs'), { recursive: true });
  const config = {
    ...chartConfig,
    webhook: { ...chartConfig.webhook, host: options.host ?? '127.0.0.1', port: options.webhookPort },
    ops: { ...chartConfig.ops, host: '127.0.0.1', port: 0 },
    tls: { ...chartConfig.tls, dir: join(dir, 'certs'), ipAddresses: [options.host ?? '127.0.0.1'] },
    policies: { ...chartConfig.policies, dir: policyDir },
  };
  const configPath = join(dir, 'config.yaml');
  await writeFile(configPath, YAML.stringify(config));
  const kubeconfig = await plane.writeKubeconfig(identity);
  // The chart's drain period is 10 s: stopping cuts it short.
  return launchGuard(dir, configPath, kubeconfig, { waitReady: options.waitReady !== false, drains: true });
}

/** The value of one of the guard's metrics with these labels (0 when absent). */
export async function metricValue(guard: ClusterGuard, name: string, labels: Record<string, string> = {}): Promise<number> {
  const samples = parseExposition((await httpGet(`${guard.process.opsUrl}/metrics`)).body);
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}
