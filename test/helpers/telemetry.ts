import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Clock } from '../../src/clock.ts';
import { loggerOptions } from '../../src/telemetry/logger.ts';
import { createMetrics, type GuardMetrics } from '../../src/telemetry/metrics.ts';

/** One JSON log line, parsed. */
export type LogLine = Record<string, unknown>;

/** A pino logger (with the guard's own options) whose lines land in `lines`, parsed. */
export function capturingLogger(level = 'debug'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(loggerOptions(level), {
    write(line: string) {
      lines.push(JSON.parse(line) as LogLine);
    },
  });
  return { logger, lines };
}

/** The guard's metrics on a registry of their own. */
export function freshMetrics(): GuardMetrics {
  return createMetrics(new Registry());
}

/** A clock that moves only when told. */
export interface TestClock extends Clock {
  advance(ms: number): void;
}

export function testClock(start = new Date('2026-11-27T12:00:00Z')): TestClock {
  let wall = start.getTime();
  let mono = 1_000;
  return {
    now: () => new Date(wall),
    monotonicMs: () => mono,
    advance(ms) {
      wall += ms;
      mono += ms;
    },
  };
}

/** One sample of a Prometheus text exposition. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text format (enough of it for the guard's own output). */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unreadable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] ?? ''] = (l[2] ?? '').replace(/\\"/g, '"').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    }
    samples.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name whose labels include `labels`; undefined when none. */
export function sampleValue(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** The current value of a metric straight from its registry. */
export async function metricValue(metrics: GuardMetrics, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number | undefined> {
  return sampleValue(parseExposition(await metrics.registry.metrics()), name, labels);
}

/** Polls `probe` until it returns something other than undefined/false; the probe is the assertion, never the delay. */
export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
