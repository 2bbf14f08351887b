import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { KubeConnection } from '../cluster/kube-http.ts';
import {
  type ActionResult,
  type AgentRef,
  applyRestore,
  applyShutdown,
  deleteSnapshot,
  discoverShutdown,
  readSnapshot,
  snapshotName,
  writeSnapshot,
} from '../cluster/shutdown-run.ts';
import { readAcks } from '../cluster/switch-ack.ts';
import { KubeSwitchStore } from '../cluster/switch-store.ts';
import { durationMs } from '../config.ts';
import { describeAction, type ShutdownAction } from '../core/shutdown-plan.ts';
import { formatEntry, freezeKey, parseAgentRef, switchesDigest } from '../core/switches.ts';
import type { CliIo } from './check.ts';
import { connect, KUBE_FLAGS, operatorName, KUBE_FLAGS_USAGE, type OutputFormat, outputFormat, printData, UsageError } from './kube-flags.ts';

export const SHUTDOWN_USAGE = `Usage: replica-guard shutdown --agent NAMESPACE:NAME [--dry-run] [flags]

Brings an agent's whole family to zero in seconds, with your own credentials (the
guard's service account has no write access to workloads):
  1. freezes the agent (switch freeze.agent.NAMESPACE.NAME) and waits until every live
     guard replica has acknowledged it;
  2. writes an immutable snapshot of what it will change into the guard's namespace
     (ConfigMap replica-guard-shutdown-<hash>);
  3. deletes the HPAs that would scale a member back up, suspends CronJobs and Jobs,
     scales Deployments, StatefulSets, ReplicaSets and ReplicationControllers to 0
     through their scale subresource, keeps DaemonSets off every node, deletes bare Pods.
Running it again changes nothing more; interrupted, it finishes from the same snapshot.
replica-guard restore puts every field back.

Flags:
      --agent NAMESPACE:NAME    the agent's service account
      --dry-run                 print the plan and change nothing
      --ack-timeout DURATION    how long to wait for the replicas' acknowledgements (default 30s)
      --skip-ack                do not wait (no guard replica is running)
      --reason TEXT             kept with the freeze
  -o, --output FORMAT           table (default), json or yaml
${KUBE_FLAGS_USAGE}`;

export const RESTORE_USAGE = `Usage: replica-guard restore --agent NAMESPACE:NAME [--dry-run] [--unfreeze] [flags]

Puts back exactly what replica-guard shutdown changed, from its snapshot: replicas,
suspensions and DaemonSet node selectors as they were, HPAs recreated (bare Pods are not
recreated). Then deletes the snapshot. The freeze stays unless --unfreeze is given.
Running it again changes nothing more; interrupted, it finishes from the same snapshot.

Flags:
      --agent NAMESPACE:NAME    the agent's service account
      --dry-run                 print the plan and change nothing
      --unfreeze                also lift the agent's freeze
  -o, --output FORMAT           table (default), json or yaml
${KUBE_FLAGS_USAGE}`;

const FLAGS = {
  ...KUBE_FLAGS,
  agent: { type: 'string' },
  'dry-run': { type: 'boolean' },
  'ack-timeout': { type: 'string', default: '30s' },
  'skip-ack': { type: 'boolean' },
  unfreeze: { type: 'boolean' },
  reason: { type: 'string' },
} as const;

/** How recently a replica must have renewed its acknowledgement to count as live. */
const LIVE_MS = 30_000;

/** `replica-guard shutdown` and `replica-guard restore`. Exit codes: 0 done, 1 failed (run again), 2 usage. */
export async function runShutdownCommand(command: 'shutdown' | 'restore', args: readonly string[], io: CliIo): Promise<number> {
  const usage = command === 'shutdown' ? SHUTDOWN_USAGE : RESTORE_USAGE;
  let connection: KubeConnection | undefined;
  try {
    const { values } = parseArgs({ args: [...args], options: FLAGS, strict: true });
    if (values.help) {
      io.out(usage);
      return 0;
    }
    if (values.agent === undefined) throw new UsageError('--agent NAMESPACE:NAME is required');
    let agent: AgentRef;
    try {
      agent = parseAgentRef(values.agent);
    } catch (err) {
      throw new UsageError(`--agent: ${(err as Error).message}`);
    }
    const format = outputFormat(values.output);
    const ackTimeout = durationMs.safeParse(values['ack-timeout']);
    if (!ackTimeout.success) throw new UsageError(`--ack-timeout: ${JSON.stringify(values['ack-timeout'])} is not a duration`);
    connection = await connect(values);
    const ctx = { connection, guardNamespace: values['guard-namespace'], agent, format, io, dryRun: values['dry-run'] === true };
    if (command === 'shutdown') return await shutdown(ctx, { ackTimeoutMs: ackTimeout.data, skipAck: values['skip-ack'] === true, reason: values.reason });
    return await restore(ctx, values.unfreeze === true);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`replica-guard ${command}: ${(err as Error).message}\n\n${usage}`);
      return 2;
    }
    io.err(`replica-guard ${command}: ${(err as Error).message}`);
    return 1;
  } finally {
    connection?.close?.();
  }
}

interface Ctx {
  readonly connection: KubeConnection;
  readonly guardNamespace: string;
  readonly agent: AgentRef;
  readonly format: OutputFormat;
  readonly io: CliIo;
  readonly dryRun: boolean;
}

async function shutdown(ctx: Ctx, options: { ackTimeoutMs: number; skipAck: boolean; reason: string | undefined }): Promise<number> {
  const { connection, guardNamespace, agent, io } = ctx;
  const existing = await readSnapshot(connection, guardNamespace, agent);
  if (ctx.dryRun) {
    const actions = existing?.actions ?? (await discoverShutdown(connection, guardNamespace, agent));
    report(ctx, actions.map((a) => [a, 'planned'] as const), 'change');
    return 0;
  }
  const store = new KubeSwitchStore({ connection, namespace: guardNamespace });
  const key = freezeKey({ type: 'agent', ...agent });
  const by = operatorName();
  await store.update((data) => (data[key] !== undefined ? undefined : { ...data, [key]: formatEntry({ at: new Date().toISOString(), by, reason: options.reason ?? 'replica-guard shutdown', source: 'shutdown' }) }));
  if (!options.skipAck) {
    const acked = await waitForAcks(connection, guardNamespace, store, key, options.ackTimeoutMs);
    if (ctx.format === 'table') io.out(`${key} acknowledged by ${acked.length} guard replica(s): ${acked.join(', ')}`);
  }
  // Discovered after the freeze took hold: the family can no longer grow under our feet.
  const snapshot = existing ?? (await writeSnapshot(connection, guardNamespace, agent, {
    agent: `${agent.namespace}:${agent.name}`,
    createdAt: new Date().toISOString(),
    by,
    actions: await discoverShutdown(connection, guardNamespace, agent),
  }));
  if (ctx.format === 'table') io.out(`snapshot: ConfigMap ${guardNamespace}/${snapshotName(agent)}${existing ? ' (from an earlier run)' : ''}`);
  return apply(ctx, snapshot.actions, applyShutdown, 'change');
}

async function restore(ctx: Ctx, unfreeze: boolean): Promise<number> {
  const { connection, guardNamespace, agent, io } = ctx;
  const snapshot = await readSnapshot(connection, guardNamespace, agent);
  if (snapshot === undefined) {
    io.err(`no shutdown snapshot for ${agent.namespace}:${agent.name} in ${guardNamespace}: nothing to restore`);
  } else if (ctx.dryRun) {
    report(ctx, snapshot.actions.map((a) => [a, 'planned'] as const), 'restore');
    return 0;
  } else {
    const code = await apply(ctx, snapshot.actions, applyRestore, 'restore');
    if (code !== 0) return code;
    await deleteSnapshot(connection, guardNamespace, agent);
  }
  if (unfreeze && !ctx.dryRun) {
    const key = freezeKey({ type: 'agent', ...agent });
    await new KubeSwitchStore({ connection, namespace: guardNamespace }).update((data) => {
      if (data[key] === undefined) return undefined;
      const { [key]: _lifted, ...rest } = data;
      return rest;
    });
    io.err(`${key} lifted`);
  } else if (!ctx.dryRun) {
    io.err(`the agent stays frozen; lift it with replica-guard unfreeze --agent ${agent.namespace}:${agent.name}`);
  }
  return 0;
}

async function apply(ctx: Ctx, actions: readonly ShutdownAction[], step: (c: KubeConnection, a: ShutdownAction) => Promise<ActionResult>, column: 'change' | 'restore'): Promise<number> {
  const done: (readonly [ShutdownAction, ActionResult])[] = [];
  for (const a of actions) {
    try {
      done.push([a, await step(ctx.connection, a)]);
    } catch (err) {
      report(ctx, done, column);
      ctx.io.err(`failed at ${a.kind} ${a.namespace}/${a.name}: ${(err as Error).message}; run the command again to finish from the same snapshot`);
      return 1;
    }
  }
  report(ctx, done, column);
  return 0;
}

function report(ctx: Ctx, rows: readonly (readonly [ShutdownAction, ActionResult])[], column: 'change' | 'restore'): void {
  printData(
    ctx.io,
    ctx.format,
    rows.map(([a, result]) => ({ kind: a.kind, namespace: a.namespace, name: a.name, action: describeAction(a)[column], result })),
    ['kind', 'namespace', 'name', 'action', 'result'],
  );
}

/**
 * Waits until every live guard replica (its acknowledgement renewed within 30 s) has
 * applied a switch map that holds the freeze. Resolves with the replicas that did.
 */
async function waitForAcks(connection: KubeConnection, guardNamespace: string, store: KubeSwitchStore, key: string, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let waitingFor: string[] = [];
  for (;;) {
    const data = await store.read();
    if (data[key] === undefined) throw new Error(`the freeze ${key} was removed from ${store.where} while waiting`);
    const digest = switchesDigest(data);
    const live = (await readAcks(connection, guardNamespace)).filter((a) => Date.now() - a.renewedMs < LIVE_MS);
    waitingFor = live.filter((a) => a.digest !== digest).map((a) => a.instance);
    if (live.length > 0 && waitingFor.length === 0) return live.map((a) => a.instance).sort();
    if (Date.now() >= deadline) {
      if (live.length === 0) throw new Error(`no guard replica acknowledges the safety switches in ${guardNamespace} (is replica-guard running there?); --skip-ack proceeds without`);
      throw new Error(`guard replicas ${waitingFor.join(', ')} did not acknowledge ${key} within ${timeoutMs} ms; the freeze is set, no workload was changed`);
    }
    await sleep(250);
  }
}

