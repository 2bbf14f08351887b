import { type FileHandle, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Recorder } from './recorder.ts';
import { type DropReason, type RecorderMetrics, writeFailureOf } from './recorder-metrics.ts';
import { type RecordEntry, recordDocument } from './review-record.ts';

/** What the file recorder is built with. */
export interface FileRecorderOptions {
  readonly dir: string;
  /** The run every record is labelled with (evaluate groups by it). */
  readonly run: string;
  /** A file is closed and a new one started past this size... */
  readonly maxFileBytes: number;
  /** ...or this age. */
  readonly maxFileAgeMs: number;
  /** The oldest files are deleted to keep the recording within this total. */
  readonly maxTotalBytes: number;
  /** Records waiting to be written; past it new ones are dropped and counted. */
  readonly queueLength: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: RecorderMetrics;
  /** Opens a new recording file for appending; replaceable to inject a failing disk. */
  readonly openFile?: ((path: string) => Promise<FileHandle>) | undefined;
}

/** A recording file's name: `recording-20261205T074501123Z-0001.jsonl`; names sort in time order. */
export const RECORDING_FILE = /^recording-\d{8}T\d{9}Z-\d{4,}\.jsonl$/;

interface OpenFile {
  readonly handle: FileHandle;
  readonly name: string;
  readonly openedAt: number;
  bytes: number;
}

const BATCH = 512;

/**
 * Appends records to JSON-lines files in a directory, off the request path: `record`
 * queues, a single writer drains the queue in batches. A failed write (a full disk) drops
 * that batch, is counted and logged when writing starts and stops failing, and never
 * reaches the decision.
 */
export class FileRecorder implements Recorder {
  readonly #o: FileRecorderOptions;
  readonly #queue: RecordEntry[] = [];
  #file: OpenFile | undefined;
  #sequence = 0;
  #draining: Promise<void> | undefined;
  #failing = false;
  #droppedWhileFailing = 0;
  #closed = false;

  constructor(options: FileRecorderOptions) {
    this.#o = options;
  }

  record(entry: RecordEntry): void {
    if (this.#closed) return;
    if (this.#queue.length >= this.#o.queueLength) {
      this.#drop('queue_full', 1);
      return;
    }
    this.#queue.push(entry);
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  /** Resolves once everything queued so far has been written (or dropped). */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.idle();
    const file = this.#file;
    this.#file = undefined;
    await file?.handle.close().catch(() => undefined);
  }

  async #drain(): Promise<void> {
    // Yield first: the decision that queued the record is answered before it is serialised.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, BATCH);
      const text = this.#serialise(batch);
      if (text.lines === 0) continue;
      try {
        const file = await this.#fileFor(text.bytes);
        await file.handle.write(text.text);
        file.bytes += text.bytes;
        this.#o.metrics.written.inc(text.lines);
        this.#recovered();
      } catch (err) {
        this.#failed(err, text.lines);
      }
    }
  }

  #serialise(batch: readonly RecordEntry[]): { text: string; bytes: number; lines: number } {
    let text = '';
    let lines = 0;
    for (const entry of batch) {
      try {
        text += `${JSON.stringify(recordDocument(entry, this.#o.run))}\n`;
        lines++;
      } catch (err) {
        this.#o.logger.error({ err, uid: entry.request.uid }, 'could not serialise a review for the recording');
        this.#drop('serialize_error', 1);
      }
    }
    return { text, bytes: Buffer.byteLength(text), lines };
  }

  /** The file to append `bytes` to, rotating by size and age first. */
  async #fileFor(bytes: number): Promise<OpenFile> {
    const now = this.#o.clock.now().getTime();
    const current = this.#file;
    if (current) {
      const full = current.bytes > 0 && current.bytes + bytes > this.#o.maxFileBytes;
      const old = now - current.openedAt >= this.#o.maxFileAgeMs;
      if (!full && !old) return current;
      this.#file = undefined;
      await current.handle.close().catch(() => undefined);
    }
    await mkdir(this.#o.dir, { recursive: true });
    const file = await this.#openNew(now);
    this.#file = file;
    await this.#enforceTotal(file.name);
    return file;
  }

  async #openNew(now: number): Promise<OpenFile> {
    const stamp = new Date(now).toISOString().replace(/[-:.]/g, '');
    for (;;) {
      const name = `recording-${stamp}-${String(++this.#sequence).padStart(4, '0')}.jsonl`;
      try {
        const path = join(this.#o.dir, name);
        const handle = this.#o.openFile ? await this.#o.openFile(path) : await open(path, 'ax');
        return { handle, name, openedAt: now, bytes: 0 };
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'EEXIST') throw err;
      }
    }
  }

  /** Deletes the oldest recording files until the directory holds at most the total. */
  async #enforceTotal(current: string): Promise<void> {
    const names = (await readdir(this.#o.dir)).filter((n) => RECORDING_FILE.test(n)).sort();
    const sizes = await Promise.all(names.map((n) => stat(join(this.#o.dir, n)).then((s) => s.size, () => 0)));
    let total = sizes.reduce((a, b) => a + b, 0);
    for (let i = 0; i < names.length && total > this.#o.maxTotalBytes; i++) {
      const name = names[i];
      if (name === undefined || name === current) continue;
      await unlink(join(this.#o.dir, name)).catch(() => undefined);
      total -= sizes[i] ?? 0;
      this.#o.metrics.deletedFiles.inc();
    }
  }

  #drop(reason: DropReason, lines: number): void {
    this.#o.metrics.dropped.inc({ reason }, lines);
  }

  #failed(err: unknown, lines: number): void {
    const reason = writeFailureOf(err);
    this.#o.metrics.writeErrors.inc({ reason });
    this.#drop('write_error', lines);
    this.#droppedWhileFailing += lines;
    // The file may be half-written or gone: the next batch starts a new one.
    const file = this.#file;
    this.#file = undefined;
    void file?.handle.close().catch(() => undefined);
    if (!this.#failing) {
      this.#failing = true;
      this.#o.logger.error({ err, dir: this.#o.dir, reason }, 'cannot write the recording; reviews are dropped from it, decisions go on');
    }
  }

  #recovered(): void {
    if (!this.#failing) return;
    this.#o.logger.warn({ dir: this.#o.dir, dropped: this.#droppedWhileFailing }, 'the recording is written again');
    this.#failing = false;
    this.#droppedWhileFailing = 0;
  }
}
