import type { CliIo } from './check.ts';
import { resolveRiskOptions, type RiskOptions, riskDefaults } from '../core/risk.ts';

/** An option a command takes: a flag, or one that takes a value. */
export interface OptionSpec {
  readonly name: string;
  /** A one-letter alias (`o` for `-o`). */
  readonly short?: string | undefined;
  readonly value: boolean;
}

/** Options and operands of a command line. */
export interface ParsedArgs {
  readonly options: ReadonlyMap<string, string | true>;
  /** Values of options given more than once, in order. */
  readonly repeated: ReadonlyMap<string, readonly string[]>;
  readonly operands: readonly string[];
}

/**
 * Parses `--name value`, `--name=value`, `-o value` and flags, the way kubectl takes them;
 * `--` ends the options. Throws an Error whose message names the option at fault.
 */
export function parseArgs(args: readonly string[], specs: readonly OptionSpec[]): ParsedArgs {
  const options = new Map<string, string | true>();
  const repeated = new Map<string, string[]>();
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      operands.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const key = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = specs.find((s) => key === `--${s.name}` || (s.short !== undefined && key === `-${s.short}`));
    if (!spec) throw new Error(`unknown option ${key}`);
    let value: string | true = true;
    if (spec.value) {
      const given = eq > 0 ? arg.slice(eq + 1) : args[++i];
      if (given === undefined) throw new Error(`${key} needs a value`);
      value = given;
      repeated.set(spec.name, [...(repeated.get(spec.name) ?? []), given]);
    } else if (eq > 0) {
      throw new Error(`${key} takes no value`);
    }
    options.set(spec.name, value);
  }
  return { options, repeated, operands };
}

/** A numeric option's value, or the default; throws naming the option when it is not a number. */
export function numberOption(parsed: ParsedArgs, name: string, fallback: number): number {
  const v = parsed.options.get(name);
  if (v === undefined) return fallback;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/** A string option's value, or undefined. */
export function stringOption(parsed: ParsedArgs, name: string): string | undefined {
  const v = parsed.options.get(name);
  return typeof v === 'string' ? v : undefined;
}

/** `--alpha`, `--beta` and `--tolerance`, as the guard's `metrics.*` settings. */
export const RISK_OPTION_SPECS: readonly OptionSpec[] = [
  { name: 'alpha', value: true },
  { name: 'beta', value: true },
  { name: 'tolerance', value: true },
];

/** The risk options given, with the guard's defaults; throws naming a bad value. */
export function riskOptionsOf(parsed: ParsedArgs): RiskOptions {
  return resolveRiskOptions({
    alpha: numberOption(parsed, 'alpha', riskDefaults.alpha),
    beta: numberOption(parsed, 'beta', riskDefaults.beta),
    tolerance: numberOption(parsed, 'tolerance', riskDefaults.tolerance),
  });
}

/**
 * A command's settings from its arguments, or its exit code: 0 after printing the usage
 * for `--help`, 2 after printing what is wrong and the usage.
 */
export function settingsOrExit<T>(
  command: string,
  usage: string,
  args: readonly string[],
  io: CliIo,
  read: (args: readonly string[]) => T | 'help',
): T | number {
  let settings: T | 'help';
  try {
    settings = read(args);
  } catch (err) {
    io.err(`replica-guard ${command}: ${err instanceof Error ? err.message : String(err)}\n\n${usage}`);
    return 2;
  }
  if (settings !== 'help') return settings;
  io.out(usage);
  return 0;
}
