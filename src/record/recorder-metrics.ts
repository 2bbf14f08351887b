import { Counter, type Registry } from 'prom-client';

/** Why a write failed, as a bounded label. */
export type WriteFailure = 'no_space' | 'permission' | 'other';

/** Why a record was not written. */
export type DropReason = 'queue_full' | 'write_error' | 'serialize_error';

/** The recorder's counters. */
export interface RecorderMetrics {
  readonly written: Counter;
  readonly dropped: Counter<'reason'>;
  readonly writeErrors: Counter<'reason'>;
  readonly deletedFiles: Counter;
}

/** Registers the recorder's counters on the guard's registry. */
export function createRecorderMetrics(registry: Registry): RecorderMetrics {
  const registers = [registry];
  return {
    written: new Counter({ name: 'replica_guard_recording_records_total', help: 'Reviews written to the recording.', registers }),
    dropped: new Counter({
      name: 'replica_guard_recording_dropped_records_total',
      help: 'Reviews not recorded, by reason (queue_full, write_error, serialize_error); the decisions went on.',
      labelNames: ['reason'],
      registers,
    }),
    writeErrors: new Counter({
      name: 'replica_guard_recording_write_errors_total',
      help: 'Failed writes to the recording, by reason (no_space, permission, other).',
      labelNames: ['reason'],
      registers,
    }),
    deletedFiles: new Counter({
      name: 'replica_guard_recording_deleted_files_total',
      help: 'Recording files deleted to keep the recording within its total size.',
      registers,
    }),
  };
}

/** The label of a failed write's error. */
export function writeFailureOf(err: unknown): WriteFailure {
  const code = typeof err === 'object' && err !== null && 'code' in err ? (err as { code: unknown }).code : undefined;
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'no_space';
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return 'permission';
  return 'other';
}
