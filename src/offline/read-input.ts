import { stat } from 'node:fs/promises';
import type { CliIo } from '../cli/check.ts';
import { BadLine, eachLine, type NumberedLine } from './input-lines.ts';

/** Bad lines reported in full under --skip-bad-lines; the rest are counted. */
export const BAD_LINES_SHOWN = 20;

/** How reading went: the lines seen and skipped, or the exit code of a failure already reported. */
export type ReadResult = { readonly lines: number; readonly badLines: number } | { readonly exitCode: number };

/**
 * Streams the lines of the files through `handle`, which throws a {@link BadLine} for a
 * line it cannot read. Without `skipBadLines` the first bad line ends the command (exit
 * 1); with it, bad lines are reported (the first few in full) and counted. A file that
 * cannot be opened is reported before any line is read (exit 1).
 */
export async function readInput(
  command: string,
  files: readonly string[],
  io: CliIo,
  skipBadLines: boolean,
  handle: (line: NumberedLine) => void,
): Promise<ReadResult> {
  for (const file of files) {
    if (file === '-') continue;
    const info = await stat(file).catch((err: unknown) => err as Error);
    if (info instanceof Error || !info.isFile()) {
      io.err(`replica-guard ${command}: ${file}: cannot read: ${info instanceof Error ? info.message : 'not a file'}`);
      return { exitCode: 1 };
    }
  }
  let lines = 0;
  let badLines = 0;
  /** Thrown out of the line loop to stop at the first bad line. */
  const stop = new Error('stop');
  try {
    await eachLine(files, (line) => {
      lines++;
      try {
        handle(line);
      } catch (err) {
        if (!(err instanceof BadLine)) throw err;
        if (!skipBadLines) {
          io.err(`replica-guard ${command}: ${err.message}`);
          io.err('(--skip-bad-lines goes on with the other lines)');
          throw stop;
        }
        badLines++;
        if (badLines <= BAD_LINES_SHOWN) io.err(`skipped ${err.message}`);
      }
    });
  } catch (err) {
    if (err === stop) return { exitCode: 1 };
    io.err(`replica-guard ${command}: cannot read the input: ${err instanceof Error ? err.message : String(err)}`);
    return { exitCode: 1 };
  }
  if (badLines > BAD_LINES_SHOWN) io.err(`skipped ${badLines - BAD_LINES_SHOWN} more bad lines`);
  return { lines, badLines };
}
