import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

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
 * The non-empty lines of each file in turn, streamed: a recording of any size is read in
 * constant memory. `-` reads standard input.
 */
export async function* linesOf(files: readonly string[]): AsyncGenerator<NumberedLine> {
  for (const file of files) {
    const input = file === '-' ? process.stdin : createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
    const reader = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    let line = 0;
    try {
      for await (const text of reader) {
        line++;
        if (text.trim() !== '') yield { file, line, text };
      }
    } finally {
      reader.close();
    }
  }
}
