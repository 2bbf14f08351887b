import { formatProblem, loadPolicyPaths } from '../policy/policy-loader.ts';

/** Where a command writes: lines without their trailing newline. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/** The path checked when none is given, relative to the working directory. */
export const DEFAULT_POLICY_PATH = 'policies/';

/**
 * `replica-guard check [paths...]`: validates policy files and directories the way the
 * webhook loads them, printing every error and warning and a summary.
 * Exit code: 0 without errors, 1 with any error, 2 when no policy file was found.
 */
export async function runCheck(paths: readonly string[], io: CliIo): Promise<number> {
  const targets = paths.length > 0 ? paths : [DEFAULT_POLICY_PATH];
  const load = await loadPolicyPaths(targets);
  for (const problem of load.problems) io.out(formatProblem(problem));
  if (load.files.length === 0) {
    io.err(`no policy files (*.yaml, *.yml) found in ${targets.join(', ')}`);
    return 2;
  }
  const errors = load.problems.filter((p) => p.severity === 'error').length;
  const warnings = load.problems.length - errors;
  io.out(
    `${count(load.policies.length, 'policy', 'policies')} in ${count(load.files.length, 'file')}: ` +
      `${count(errors, 'error')}, ${count(warnings, 'warning')}`,
  );
  return errors > 0 ? 1 : 0;
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
