import { policyJsonSchema } from '../policy/policy-json-schema.ts';
import { runCerts } from './certs.ts';
import { runCheck } from './check.ts';
import { runEvaluate } from './evaluate.ts';
import { runReplay } from './replay.ts';
import { runPolicyTests } from './test-policies.ts';
import { runDoctor } from './doctor-command.ts';
import { runShutdownCommand } from './shutdown-command.ts';
import { runSwitchCommand, type SwitchCommand } from './switch-commands.ts';
import type { CliIo } from './check.ts';

/** What `serve` expects of src/main.ts, which owns the process (env, files, listening, signals). */
interface ServeModule {
  runServe(argv: readonly string[]): unknown;
}

/** The usage text of `replica-guard`. */
export const USAGE = `Usage: replica-guard <command> [args]

Commands:
  check [paths...]   validate policy files and directories (default: policies/)
                     exit 0: no errors, 1: errors found, 2: no policy file found
  test [paths...]    run policy cases: a review, the facts, the expected outcome
                     (default: policies/cases/); exit 0: all pass, 1: a case
                     failed, 2: a case file or its policies cannot be read
  schema             print the JSON Schema of a policy document
  evaluate FILES...  the risk tables (OR, AOC, ΦR) of recorded runs, audit logs
                     or trajectories; evaluate --help for its options
  replay --policies DIR RECORDING...
                     what other policies would have made of recorded reviews
  certs <create|inspect>  a CA and serving certificate for a guard run outside
                     the cluster (certs --help)
  serve [args...]    run the admission webhook
  freeze             stop all growth of an agent, a namespace's agents or every agent
  unfreeze           lift a freeze
  break-glass        every policy in audit mode for a while (an emergency)
  exempt             one agent or workload in audit mode for a while
  switches           list the safety switches set (-o table|json|yaml)
  doctor             check whether the agents can get around the guard (RBAC)
  shutdown           freeze an agent and bring its family to zero (--dry-run: the plan)
  restore            put back exactly what shutdown changed
  help               show this text`;

/** Writes to the process's stdout and stderr, a line at a time. */
export const processIo: CliIo = {
  out: (line) => {
    process.stdout.write(`${line}\n`);
  },
  err: (line) => {
    process.stderr.write(`${line}\n`);
  },
};

/**
 * Runs one command. Resolves with the exit code, or undefined when the command leaves
 * the process running (serve) and the exit code is not its to decide.
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number | undefined> {
  const [command, ...args] = argv;
  switch (command) {
    case 'check': {
      if (args.some((a) => a === '--help' || a === '-h')) {
        io.out(USAGE);
        return 0;
      }
      const option = args.find((a) => a.startsWith('-'));
      if (option !== undefined) {
        io.err(`replica-guard check: unknown option ${option}\n\n${USAGE}`);
        return 2;
      }
      return runCheck(args, io);
    }
    case 'test': {
      if (args.some((a) => a === '--help' || a === '-h')) {
        io.out(USAGE);
        return 0;
      }
      const option = args.find((a) => a.startsWith('-'));
      if (option !== undefined) {
        io.err(`replica-guard test: unknown option ${option}\n\n${USAGE}`);
        return 2;
      }
      return runPolicyTests(args, io);
    }
    case 'certs':
      return runCerts(args, io);
    case 'schema':
      if (args.some((a) => a === '--help' || a === '-h')) {
        io.out(USAGE);
        return 0;
      }
      io.out(JSON.stringify(policyJsonSchema(), null, 2));
      return 0;
    case 'evaluate':
      return runEvaluate(args, io);
    case 'replay':
      return runReplay(args, io);
    case 'serve':
      return runServeCommand(args);
    case 'freeze':
    case 'unfreeze':
    case 'break-glass':
    case 'exempt':
    case 'switches':
      return runSwitchCommand(command satisfies SwitchCommand, args, io);
    case 'doctor':
      return runDoctor(args, io);
    case 'shutdown':
    case 'restore':
      return runShutdownCommand(command, args, io);
    case 'help':
    case '--help':
    case '-h':
      io.out(USAGE);
      return 0;
    case undefined:
      io.err(USAGE);
      return 2;
    default:
      io.err(`replica-guard: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

async function runServeCommand(args: readonly string[]): Promise<number | undefined> {
  // Loaded on demand so that check and schema work without the server's dependencies,
  // and typed by shape because the module is written and evolves separately.
  const specifier = new URL('../main.ts', import.meta.url).href;
  const mod = (await import(specifier)) as unknown as Partial<ServeModule>;
  if (typeof mod.runServe !== 'function') throw new Error('src/main.ts does not export runServe(argv)');
  const code = await mod.runServe(args);
  return typeof code === 'number' ? code : undefined;
}

/**
 * The process entry: runs the command and sets the exit code. It sets `process.exitCode`
 * rather than calling `process.exit`, which would cut off output still being written to a pipe.
 */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  try {
    const code = await runCli(argv, processIo);
    if (code !== undefined) process.exitCode = code;
  } catch (error) {
    processIo.err(`replica-guard: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}

if (import.meta.main) await main();
