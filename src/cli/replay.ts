import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { mappedKind } from '../cluster/kube-view.ts';
import { configSchema } from '../config.ts';
import { type RiskOptions, riskDefaults } from '../core/risk.ts';
import { parseRecordLine } from '../offline/recording-schema.ts';
import { readInput } from '../offline/read-input.ts';
import { BadLine } from '../offline/input-lines.ts';
import { replayTable } from '../offline/replay-format.ts';
import { type ComparedVerdict, type ReplayPolicies, compareVerdicts, recordedEpisode, replayRecord } from '../offline/replay-record.ts';
import { ReplaySummary } from '../offline/replay-summary.ts';
import { compileAgentMatcher } from '../policy/agent-matcher.ts';
import { formatProblem, loadPolicyPaths } from '../policy/policy-loader.ts';
import type { CliIo } from './check.ts';
import { numberOption, type OptionSpec, parseArgs, RISK_OPTION_SPECS, riskOptionsOf, settingsOrExit, stringOption } from './options.ts';

/** The usage text of `replica-guard replay`. */
export const REPLAY_USAGE = `Usage: replica-guard replay --policies DIR [options] RECORDING...

Runs every recorded review (record.dir) through the webhook's interpretation, judgement
and resolution with the recorded facts, under the policies in DIR, and prints per agent
the verdicts that change, the risk on the admitted basis under the new policies next to
the recorded one, and the false denials (growth denied although the count stayed within
the need).

Options:
      --policies DIR    the policies to replay under (a directory or files; repeatable)
      --config FILE     the guard's configuration, for its scaleResources and customResources
  -o, --format FORMAT   table (default) or json
      --show N          changed verdicts and false denials shown in full per agent (default 5)
      --alpha N, --beta N, --tolerance N   as in evaluate (defaults ${riskDefaults.alpha}, ${riskDefaults.beta}, ${riskDefaults.tolerance})
      --skip-bad-lines  report and count unreadable lines, and go on
  -h, --help            show this text

Exit status: 0 done, 1 an unreadable file, line or policy, 2 bad usage or no input.`;

const SPECS: readonly OptionSpec[] = [
  { name: 'policies', value: true },
  { name: 'config', value: true },
  { name: 'format', short: 'o', value: true },
  { name: 'show', value: true },
  ...RISK_OPTION_SPECS,
  { name: 'skip-bad-lines', value: false },
  { name: 'help', short: 'h', value: false },
];

interface ReplaySettings {
  readonly policyPaths: readonly string[];
  readonly config: string | undefined;
  readonly format: 'table' | 'json';
  readonly show: number;
  readonly risk: RiskOptions;
  readonly skipBadLines: boolean;
  readonly files: readonly string[];
}

function settingsOf(args: readonly string[]): ReplaySettings | 'help' {
  const parsed = parseArgs(args, SPECS);
  if (parsed.options.has('help')) return 'help';
  const policyPaths = parsed.repeated.get('policies') ?? [];
  if (policyPaths.length === 0) throw new Error('--policies DIR is required');
  const format = stringOption(parsed, 'format') ?? 'table';
  if (format !== 'table' && format !== 'json') throw new Error(`--format must be table or json, got ${JSON.stringify(format)}`);
  const show = numberOption(parsed, 'show', 5);
  if (!Number.isInteger(show) || show < 0) throw new Error(`--show must be a whole number, got ${show}`);
  if (parsed.operands.length === 0) throw new Error('no recordings given');
  return {
    policyPaths,
    config: stringOption(parsed, 'config'),
    format,
    show,
    risk: riskOptionsOf(parsed),
    skipBadLines: parsed.options.has('skip-bad-lines'),
    files: parsed.operands,
  };
}

async function replayPolicies(settings: ReplaySettings, io: CliIo): Promise<ReplayPolicies | undefined> {
  const load = await loadPolicyPaths(settings.policyPaths);
  const errors = load.problems.filter((p) => p.severity === 'error');
  for (const p of errors) io.err(formatProblem(p));
  if (errors.length > 0 || load.policies.length === 0) {
    if (load.policies.length === 0) io.err(`replica-guard replay: no policies in ${settings.policyPaths.join(', ')}`);
    return undefined;
  }
  let scaleResources: ReplayPolicies['scaleResources'] = [];
  let customKinds: ReplayPolicies['customKinds'] = [];
  if (settings.config !== undefined) {
    const parsed = configSchema.safeParse(YAML.parse(await readFile(settings.config, 'utf8')) ?? {});
    if (!parsed.success) {
      for (const issue of parsed.error.issues) io.err(`${settings.config}: ${issue.path.join('.')}: ${issue.message}`);
      return undefined;
    }
    scaleResources = parsed.data.scaleResources;
    customKinds = parsed.data.view.customResources.map(mappedKind);
  }
  return { policies: load.policies, matcher: compileAgentMatcher(load.policies), scaleResources, customKinds };
}

/**
 * `replica-guard replay --policies DIR RECORDING...`: what other policies would have made
 * of recorded traffic. Deterministic: the same recording and policies print the same.
 */
export async function runReplay(args: readonly string[], io: CliIo): Promise<number> {
  const settings = settingsOrExit('replay', REPLAY_USAGE, args, io, settingsOf);
  if (typeof settings === 'number') return settings;
  let policies: ReplayPolicies | undefined;
  try {
    policies = await replayPolicies(settings, io);
  } catch (err) {
    io.err(`replica-guard replay: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  if (!policies) return 1;
  const summary = new ReplaySummary(settings.risk, settings.show);
  let records = 0;
  const active = policies;
  const read = await readInput('replay', settings.files, io, settings.skipBadLines, (line) => {
    let record;
    try {
      record = parseRecordLine(line.text);
      const replayed = replayRecord(record, active);
      records++;
      if (replayed.type === 'not-replayable') {
        summary.notReplayable(record);
        return;
      }
      const recorded = verdictOfDecisionFields(record.verdict);
      summary.add(record, recorded, replayed.verdict, compareVerdicts(recorded, replayed.verdict), {
        recorded: recordedEpisode(record),
        replayed: replayed.episode,
      });
    } catch (err) {
      throw badLine(line.file, line.line, err);
    }
  });
  if ('exitCode' in read) return read.exitCode;
  if (records === 0) {
    io.err(`replica-guard replay: no recorded reviews in ${settings.files.join(', ')}`);
    return 2;
  }
  const agents = summary.agents();
  if (settings.format === 'json') {
    io.out(JSON.stringify({ records, badLines: read.badLines, agents }, null, 2));
  } else {
    for (const l of replayTable(agents, records, read.badLines)) io.out(l);
  }
  return 0;
}

const verdictOfDecisionFields = (v: ComparedVerdict) => ({
  decision: v.decision,
  policy: v.policy,
  limit: v.limit,
  code: v.code,
  message: v.message,
});

function badLine(file: string, line: number, err: unknown): BadLine {
  if (err instanceof BadLine) return err;
  return new BadLine(file, line, err instanceof Error ? err.message : String(err));
}
