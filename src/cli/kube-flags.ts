import { userInfo } from 'node:os';
import type { ParseArgsConfig } from 'node:util';
import YAML from 'yaml';
import type { KubeConnection } from '../cluster/kube-http.ts';
import type { CliIo } from './check.ts';

/**
 * The flags every cluster-touching command takes, as kubectl spells them: `--kubeconfig`
 * and `--context` (without them: `$KUBECONFIG`, then `~/.kube/config`, as kubectl finds its
 * cluster), the guard's namespace, `-o` for data, `-h`.
 */
export const KUBE_FLAGS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  'guard-namespace': { type: 'string', default: 'replica-guard' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** The text that documents {@link KUBE_FLAGS}, for usage messages. */
export const KUBE_FLAGS_USAGE = `      --kubeconfig FILE         the kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config)
      --context NAME            a context of that kubeconfig other than its current one
      --guard-namespace NS      the namespace replica-guard runs in (default replica-guard)
  -h, --help                    show this text`;

/** Output formats of commands whose output is data. */
export type OutputFormat = 'table' | 'json' | 'yaml';

/** Reads `-o`; throws a usage error on anything else. */
export function outputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'table' || value === 'wide') return 'table';
  if (value === 'json' || value === 'yaml') return value;
  throw new UsageError(`unknown output format ${JSON.stringify(value)}; use json, yaml or table`);
}

/** A mistake in the command line: printed with the usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Connects the way kubectl would with these flags. Loaded on demand: other commands need no Kubernetes client. */
export async function connect(values: { kubeconfig?: string | undefined; context?: string | undefined }): Promise<KubeConnection> {
  const { loadKubeConnection } = await import('../cluster/kube-config.ts');
  return loadKubeConnection({ kubeconfig: values.kubeconfig, context: values.context });
}

/** Prints rows as a kubectl-style table (upper-case headers, columns padded), JSON or YAML. */
export function printData(io: CliIo, format: OutputFormat, rows: readonly Readonly<Record<string, string>>[], columns: readonly string[]): void {
  if (format === 'json') {
    io.out(JSON.stringify(rows, null, 2));
    return;
  }
  if (format === 'yaml') {
    io.out(YAML.stringify(rows).trimEnd());
    return;
  }
  if (rows.length === 0) {
    io.out('No resources found.');
    return;
  }
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join('').trimEnd();
  io.out(line(columns.map((c) => c.toUpperCase())));
  for (const r of rows) io.out(line(columns.map((c) => r[c] ?? '')));
}

/** Who runs the command, for the `by` of what it writes: the local user name. */
export function operatorName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
