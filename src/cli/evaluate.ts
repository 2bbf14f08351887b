import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type RiskOptions, riskDefaults } from '../core/risk.ts';
import { Evaluation } from '../offline/evaluation.ts';
import { LineReader } from '../offline/line-reader.ts';
import { readInput } from '../offline/read-input.ts';
import { FORMATS, type Format, formatReport } from '../offline/report-format.ts';
import { plotFileName, plotRun } from '../offline/svg-plot.ts';
import type { CliIo } from './check.ts';
import { numberOption, type OptionSpec, parseArgs, RISK_OPTION_SPECS, riskOptionsOf, settingsOrExit, stringOption } from './options.ts';

/** The usage text of `replica-guard evaluate`. */
export const EVALUATE_USAGE = `Usage: replica-guard evaluate [options] FILES...

Reads recordings (record.dir), the guard's audit log, or trajectories (JSON lines or
CSV: time,run,agent,workload,requested,need[,admitted]) and prints, per agent and run,
E, OR, AOC, AOC_norm, SR and ΦR on the requested and admitted bases, and the mean and
spread per agent across runs. "-" reads standard input.

Options:
  -o, --format FORMAT   table (default), markdown, csv or json
      --alpha N         weight of OR in ΦR (default ${riskDefaults.alpha}, as metrics.alpha)
      --beta N          weight of AOC_norm in ΦR (default ${riskDefaults.beta}, as metrics.beta)
      --tolerance N     instances above need that are not overuse (default ${riskDefaults.tolerance})
      --line N          ΦR at or above this is marked HIGH (default ${riskDefaults.highRiskLine}, as metrics.highRiskLine)
      --plot DIR        write one SVG per agent and run into DIR
      --skip-bad-lines  report and count unreadable lines, and go on
  -h, --help            show this text

Exit status: 0 done, 1 an unreadable file or line, 2 bad usage or no input.`;

const SPECS: readonly OptionSpec[] = [
  { name: 'format', short: 'o', value: true },
  ...RISK_OPTION_SPECS,
  { name: 'line', value: true },
  { name: 'plot', value: true },
  { name: 'skip-bad-lines', value: false },
  { name: 'help', short: 'h', value: false },
];

interface EvaluateSettings {
  readonly format: Format;
  readonly risk: RiskOptions & { readonly line: number };
  readonly plotDir: string | undefined;
  readonly skipBadLines: boolean;
  readonly files: readonly string[];
}

function settingsOf(args: readonly string[]): EvaluateSettings | 'help' {
  const parsed = parseArgs(args, SPECS);
  if (parsed.options.has('help')) return 'help';
  const format = stringOption(parsed, 'format') ?? 'table';
  if (!(FORMATS as readonly string[]).includes(format)) throw new Error(`--format must be one of ${FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
  const line = numberOption(parsed, 'line', riskDefaults.highRiskLine);
  if (line < 0 || line > 1) throw new Error(`--line must lie in [0, 1], got ${line}`);
  const risk = riskOptionsOf(parsed);
  if (parsed.operands.length === 0) throw new Error('no input files given');
  return {
    format: format as Format,
    risk: { ...risk, line },
    plotDir: stringOption(parsed, 'plot'),
    skipBadLines: parsed.options.has('skip-bad-lines'),
    files: parsed.operands,
  };
}

/**
 * `replica-guard evaluate FILES...`: the risk tables of recorded agent runs, computed by
 * the functions the live metrics use (core/risk.ts), so both agree on the same episodes.
 */
export async function runEvaluate(args: readonly string[], io: CliIo): Promise<number> {
  const settings = settingsOrExit('evaluate', EVALUATE_USAGE, args, io, settingsOf);
  if (typeof settings === 'number') return settings;
  const evaluation = new Evaluation(settings.risk, settings.plotDir !== undefined);
  const reader = new LineReader();
  let observations = 0;
  let episodes = 0;
  let ignored = 0;
  const read = await readInput('evaluate', settings.files, io, settings.skipBadLines, (line) => {
    const o = reader.read(line);
    if (o === 'ignored') {
      ignored++;
      return;
    }
    observations++;
    if (o.episode) episodes++;
    evaluation.add(o);
  });
  if ('exitCode' in read) return read.exitCode;
  if (observations === 0) {
    io.err(`replica-guard evaluate: no reviews, audit decisions or trajectory rows in ${settings.files.join(', ')}`);
    return 2;
  }
  const report = evaluation.report();
  const stats = { files: settings.files.length, lines: read.lines, observations, episodes, ignored, badLines: read.badLines };
  for (const l of formatReport(report, stats, settings.format)) io.out(l);
  if (settings.plotDir !== undefined) {
    await mkdir(settings.plotDir, { recursive: true });
    const names = new Set<string>();
    for (const run of report.runs) {
      let name = plotFileName(run.agent, run.run);
      for (let i = 2; names.has(name); i++) name = plotFileName(run.agent, `${run.run}-${i}`);
      names.add(name);
      await writeFile(join(settings.plotDir, name), plotRun(run, settings.risk.line));
    }
    io.err(`wrote ${names.size} plots to ${settings.plotDir}`);
  }
  return 0;
}
