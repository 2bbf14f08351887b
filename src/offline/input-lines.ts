import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** A line of input that cannot be read, with where it is. */
export class BadLine extends Error {
  readonly file: string;
  readonly line: number;

  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

/** One non-empty line of a file, numbered from 1. */
export interface NumberedLine {
  readonly file: string;
  readonly line: number;
  readonly text: string;
}

/**
 * Calls `handle` with the non-empty lines of each file in turn, streamed in chunks of a
 * MiB: a recording of any size is read in constant memory. `-` reads standard input.
 * Lines are split by hand rather than through `readline`, whose per-line async iteration
 * costs more than parsing a line. `handle` may throw to stop.
 */
export async function eachLine(files: readonly string[], handle: (line: NumberedLine) => void): Promise<void> {
  for (const file of files) {
    const input = file === '-' ? process.stdin : createReadStream(file, { highWaterMark: 1 << 20 });
    const decoder = new StringDecoder('utf8');
    let rest = '';
    let line = 0;
    const emit = (text: string) => {
      line++;
      const trimmed = text.endsWith('\r') ? text.slice(0, -1) : text;
      if (trimmed.trim() !== '') handle({ file, line, text: trimmed });
    };
    try {
      for await (const chunk of input) {
        const text = rest + decoder.write(chunk as Buffer);
        let from = 0;
        for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
          emit(text.slice(from, nl));
          from = nl + 1;
        }
        rest = text.slice(from);
      }
      rest += decoder.end();
      if (rest !== '') emit(rest);
    } finally {
      if (input !== process.stdin) input.destroy();
    }
  }
}
