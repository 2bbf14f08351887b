import { parseArgs } from 'node:util';
import { FileSwitchStore } from '../cluster/file-switch-store.ts';
import { KubeSwitchStore, type SwitchData, type SwitchStore } from '../cluster/switch-store.ts';
import { durationMs } from '../config.ts';
import {
  BREAK_GLASS_KEY,
  type ExemptionScope,
  exemptionKey,
  type FreezeScope,
  formatEntry,
  freezeKey,
  parseAgentRef,
  parseSwitches,
  switchKindOf,
} from '../core/switches.ts';
import type { CliIo } from './check.ts';
import { connect, KUBE_FLAGS, operatorName, KUBE_FLAGS_USAGE, outputFormat, printData, UsageError } from './kube-flags.ts';

/** The commands of the safety switches. */
export const SWITCH_COMMANDS = ['freeze', 'unfreeze', 'break-glass', 'exempt', 'switches'] as const;
export type SwitchCommand = (typeof SWITCH_COMMANDS)[number];

const COMMON = `${KUBE_FLAGS_USAGE}
      --file FILE               the switch file of a guard on its embedded default, instead of a cluster
      --reason TEXT             why (kept with the switch, shown in denials and logs)
      --by NAME                 who sets it (default: the local user name)`;

const USAGES: Readonly<Record<SwitchCommand, string>> = {
  freeze: `Usage: replica-guard freeze (--agent NAMESPACE:NAME | --namespace NS | --all) [flags]

Stops all growth of one agent (a service account), of every agent whose service account
lives in a namespace, or of every agent. Scaling down and deleting stay allowed. Written
into the switch ConfigMap replica-guard-switches in the guard's namespace, which every
guard replica reads within seconds. Lifted only by replica-guard unfreeze.

Flags:
${COMMON}`,
  unfreeze: `Usage: replica-guard unfreeze (--agent NAMESPACE:NAME | --namespace NS | --all) [flags]

Lifts a freeze set by replica-guard freeze or copied from a replica-guard.io/freeze
annotation. Removing the annotation alone does not unfreeze.

Flags:
${COMMON}`,
  'break-glass': `Usage: replica-guard break-glass (--for DURATION | --until TIME | --off) [flags]

In an emergency: every policy judges in audit mode (growth is allowed, what would have
been denied is recorded and warned about) until the switch expires or is turned off.
Freezes still apply. DURATION: 30s, 15m, 2h; TIME: RFC 3339.

Flags:
${COMMON}`,
  exempt: `Usage: replica-guard exempt (--agent NAMESPACE:NAME | --workload NAMESPACE/KIND/NAME)
                           (--for DURATION | --until TIME | --remove) [flags]

Judges one agent's requests, or the requests on one workload, in audit mode until the
exemption expires by itself. Freezes still apply.

Flags:
${COMMON}`,
  switches: `Usage: replica-guard switches [-o table|json|yaml] [flags]

Lists the safety switches set: freezes, break-glass and exemptions, with who set them,
when, why and until when (expired ones are marked).

Flags:
${COMMON}
  -o, --output FORMAT           table (default), json or yaml`,
};

/** The usage text of a switch command. */
export function switchUsage(command: SwitchCommand): string {
  return USAGES[command];
}

const FLAGS = {
  ...KUBE_FLAGS,
  file: { type: 'string' },
  reason: { type: 'string' },
  agent: { type: 'string' },
  namespace: { type: 'string' },
  all: { type: 'boolean' },
  workload: { type: 'string' },
  for: { type: 'string' },
  until: { type: 'string' },
  off: { type: 'boolean' },
  remove: { type: 'boolean' },
  by: { type: 'string' },
} as const;

type Values = ReturnType<typeof parse>['values'];

function parse(args: readonly string[]) {
  return parseArgs({ args: [...args], options: FLAGS, allowPositionals: false, strict: true });
}

/**
 * Runs a switch command with the operator's credentials. Exit codes: 0 done (also when
 * nothing had to change), 1 the cluster or the file could not be read or written, 2 a
 * mistake in the command line.
 */
export async function runSwitchCommand(command: SwitchCommand, args: readonly string[], io: CliIo): Promise<number> {
  let values: Values;
  try {
    ({ values } = parse(args));
  } catch (err) {
    io.err(`replica-guard ${command}: ${(err as Error).message}\n\n${USAGES[command]}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGES[command]);
    return 0;
  }
  try {
    const store = await storeOf(values);
    switch (command) {
      case 'freeze':
      case 'unfreeze':
        return await freezeCommand(command, values, store, io);
      case 'break-glass':
        return await breakGlassCommand(values, store, io);
      case 'exempt':
        return await exemptCommand(values, store, io);
      case 'switches':
        return await listCommand(values, store, io);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`replica-guard ${command}: ${err.message}\n\n${USAGES[command]}`);
      return 2;
    }
    io.err(`replica-guard ${command}: ${(err as Error).message}`);
    return 1;
  }
}

async function storeOf(values: Values): Promise<SwitchStore> {
  if (values.file !== undefined) {
    if (values.kubeconfig !== undefined || values.context !== undefined) throw new UsageError('--file and --kubeconfig/--context exclude each other');
    return new FileSwitchStore(values.file);
  }
  return new KubeSwitchStore({ connection: await connect(values), namespace: values['guard-namespace'] });
}

function entryOf(values: Values, until?: number) {
  return formatEntry({ at: new Date().toISOString(), by: values.by ?? operatorName(), reason: values.reason, source: 'cli', until });
}


function freezeScopeOf(values: Values): FreezeScope {
  const given = [values.agent !== undefined, values.namespace !== undefined, values.all === true].filter(Boolean).length;
  if (given !== 1) throw new UsageError('give exactly one of --agent NAMESPACE:NAME, --namespace NS, --all');
  if (values.all) return { type: 'all' };
  if (values.namespace !== undefined) return { type: 'namespace', namespace: values.namespace };
  return { type: 'agent', ...agentOf(values.agent ?? '') };
}

function agentOf(text: string): { namespace: string; name: string } {
  try {
    return parseAgentRef(text);
  } catch (err) {
    throw new UsageError(`--agent: ${(err as Error).message}`);
  }
}

function keyOrUsage(make: () => string): string {
  try {
    return make();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function freezeCommand(command: 'freeze' | 'unfreeze', values: Values, store: SwitchStore, io: CliIo): Promise<number> {
  const scope = freezeScopeOf(values);
  const key = keyOrUsage(() => freezeKey(scope));
  let changed = false;
  await store.update((data) => {
    changed = command === 'freeze' ? data[key] === undefined : data[key] !== undefined;
    if (!changed) return undefined;
    return command === 'freeze' ? { ...data, [key]: entryOf(values) } : without(data, key);
  });
  if (command === 'freeze') io.out(changed ? `${key} set in ${store.where}: growth is frozen` : `${key} was already set in ${store.where}`);
  else io.out(changed ? `${key} removed from ${store.where}: growth is no longer frozen by it` : `${key} is not set in ${store.where}`);
  return 0;
}

/** An expiry from `--for` or `--until`; undefined when neither is given. */
function expiryOf(values: Values): number | undefined {
  if (values.for !== undefined && values.until !== undefined) throw new UsageError('--for and --until exclude each other');
  if (values.for !== undefined) {
    const parsed = durationMs.safeParse(values.for);
    if (!parsed.success || parsed.data <= 0) throw new UsageError(`--for: ${JSON.stringify(values.for)} is not a duration such as 30s, 15m or 2h`);
    return Date.now() + parsed.data;
  }
  if (values.until !== undefined) {
    const t = Date.parse(values.until);
    if (Number.isNaN(t)) throw new UsageError(`--until: ${JSON.stringify(values.until)} is not an RFC 3339 time`);
    if (t <= Date.now()) throw new UsageError(`--until: ${values.until} has already passed`);
    return t;
  }
  return undefined;
}

async function breakGlassCommand(values: Values, store: SwitchStore, io: CliIo): Promise<number> {
  if (values.off) {
    if (values.for !== undefined || values.until !== undefined) throw new UsageError('--off takes neither --for nor --until');
    await store.update((data) => (data[BREAK_GLASS_KEY] === undefined ? undefined : without(data, BREAK_GLASS_KEY)));
    io.out(`break-glass is off in ${store.where}: the policies decide in their own modes`);
    return 0;
  }
  const until = expiryOf(values);
  if (until === undefined) throw new UsageError('give --for DURATION or --until TIME (break-glass always expires), or --off');
  await store.update((data) => ({ ...data, [BREAK_GLASS_KEY]: entryOf(values, until) }));
  io.out(`break-glass is on in ${store.where} until ${new Date(until).toISOString()}: every policy judges in audit mode`);
  return 0;
}

function exemptionScopeOf(values: Values): ExemptionScope {
  if ((values.agent === undefined) === (values.workload === undefined)) throw new UsageError('give exactly one of --agent NAMESPACE:NAME, --workload NAMESPACE/KIND/NAME');
  if (values.agent !== undefined) return { type: 'agent', ...agentOf(values.agent) };
  const [namespace, kind, name, ...rest] = (values.workload ?? '').split('/');
  if (!namespace || !kind || !name || rest.length > 0) throw new UsageError(`--workload: expected NAMESPACE/KIND/NAME, got ${JSON.stringify(values.workload)}`);
  return { type: 'workload', namespace, kind, name };
}

async function exemptCommand(values: Values, store: SwitchStore, io: CliIo): Promise<number> {
  const key = keyOrUsage(() => exemptionKey(exemptionScopeOf(values)));
  if (values.remove) {
    await store.update((data) => (data[key] === undefined ? undefined : without(data, key)));
    io.out(`${key} removed from ${store.where}`);
    return 0;
  }
  const until = expiryOf(values);
  if (until === undefined) throw new UsageError('give --for DURATION or --until TIME (an exemption always expires), or --remove');
  await store.update((data) => ({ ...data, [key]: entryOf(values, until) }));
  io.out(`${key} set in ${store.where} until ${new Date(until).toISOString()}`);
  return 0;
}

async function listCommand(values: Values, store: SwitchStore, io: CliIo): Promise<number> {
  const format = outputFormat(values.output);
  const { switches, problems } = parseSwitches(await store.read());
  for (const p of problems) io.err(`warning: ${p}`);
  const now = Date.now();
  const rows = [...switches.entries].map(([key, e]) => ({
    switch: key,
    kind: switchKindOf(key),
    by: e.by ?? '',
    at: e.at ?? '',
    until: e.until === undefined ? '' : new Date(e.until).toISOString(),
    expired: e.until !== undefined && e.until <= now ? 'true' : 'false',
    reason: e.reason ?? '',
  }));
  printData(io, format, rows, ['switch', 'kind', 'by', 'at', 'until', 'expired', 'reason']);
  return 0;
}

function without(data: SwitchData, key: string): SwitchData {
  const { [key]: _removed, ...rest } = data;
  return rest;
}
