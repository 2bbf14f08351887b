import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import type { GuardConfig } from '../config.ts';
import { FileRecorder } from './file-recorder.ts';
import type { Recorder } from './recorder.ts';
import { createRecorderMetrics } from './recorder-metrics.ts';

/** The recorder `record` configures, or undefined when `record.dir` is not set. */
export function recorderOf(
  config: GuardConfig['record'],
  deps: { readonly registry: Registry; readonly clock: Clock; readonly logger: Logger },
): Recorder | undefined {
  if (config.dir === undefined) return undefined;
  const dir = resolve(config.dir);
  const run = config.run ?? deps.clock.now().toISOString();
  deps.logger.info({ dir, run }, 'agent reviews are recorded');
  return new FileRecorder({
    dir,
    run,
    maxFileBytes: config.maxFileSize,
    maxFileAgeMs: config.maxFileAge,
    maxTotalBytes: config.maxTotalSize,
    queueLength: config.queueLength,
    clock: deps.clock,
    logger: deps.logger.child({ component: 'recorder' }),
    metrics: createRecorderMetrics(deps.registry),
  });
}
