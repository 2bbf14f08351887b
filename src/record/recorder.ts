import type { RecordEntry } from './review-record.ts';

/**
 * Where the validating webhook hands each agent review it decided. `record` returns at
 * once and never throws: a recording must never slow or fail a decision.
 */
export interface Recorder {
  record(entry: RecordEntry): void;
  /** Writes what is queued and closes the file. */
  close(): Promise<void>;
}
