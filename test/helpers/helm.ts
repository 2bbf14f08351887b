import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { clusterTools } from '../setup/cluster-tools.ts';
import { PROJECT_ROOT } from './process.ts';

/** The real helm of the test tier: `HELM_BIN`, or the one test/setup/ensure-cluster-tools.ts builds. */
export const HELM_BIN = process.env.HELM_BIN ?? clusterTools().helm;

/** The chart, from the repository root. */
export const CHART_DIR = join(PROJECT_ROOT, 'charts/replica-guard');

/** Fails with what to do when helm is missing, rather than with a bare ENOENT per test. */
export async function requireHelm(): Promise<void> {
  await access(HELM_BIN, constants.X_OK).catch(() => {
    throw new Error(`helm is missing at ${HELM_BIN}: npm run test:tools builds it (npm test and test:cluster do so first), or set HELM_BIN`);
  });
}

/** One run of helm: its exit code and output. */
export interface HelmRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs helm with these arguments; never rejects on a non-zero exit. */
export function helm(args: readonly string[]): Promise<HelmRun> {
  return new Promise((resolve, reject) => {
    // HOME-independent: helm keeps no state the tests rely on.
    execFile(HELM_BIN, [...args], { cwd: PROJECT_ROOT, timeout: 60_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

/** A rendered Kubernetes object. */
export interface Rendered {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string>; readonly annotations?: Record<string, string> };
  readonly [key: string]: unknown;
}

/**
 * `helm template` of the chart with these extra arguments, every document parsed.
 * @throws with helm's output when it fails or a document does not parse.
 */
export async function renderChart(args: readonly string[] = [], release = 'rg', namespace = 'replica-guard'): Promise<Rendered[]> {
  const run = await helm(['template', release, CHART_DIR, '--namespace', namespace, ...args]);
  if (run.code !== 0) throw new Error(`helm template failed (${run.code}): ${run.stderr}`);
  const docs = YAML.parseAllDocuments(run.stdout);
  const out: Rendered[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`helm template rendered invalid YAML: ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJSON();
    if (value === null || value === undefined) continue;
    out.push(value as Rendered);
  }
  return out;
}

/** The one object of this kind (and name, when given). */
export function only(objects: readonly Rendered[], kind: string, name?: string): Rendered {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  const [first] = found;
  if (first === undefined) throw new Error('unreachable');
  return first;
}
