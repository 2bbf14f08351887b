import { describe, expect, it } from 'vitest';
import { capturingLogger, testClock } from '../../test/helpers/telemetry.ts';
import { errorCount, freshErrorCounter } from '../../test/load/load-fixtures.ts';
import { LoadFailureReporter } from './load-failures.ts';

function setup(intervalMs = 60_000) {
  const { logger, lines } = capturingLogger();
  const clock = testClock();
  const { errors } = freshErrorCounter();
  const reporter = new LoadFailureReporter({ errors, logger, clock, logIntervalMs: intervalMs });
  return { reporter, lines, clock, errors };
}

describe('LoadFailureReporter', () => {
  it('counts every failure but logs a source and reason once per interval, saying how many it left out', async () => {
    const { reporter, lines, clock, errors } = setup(60_000);
    for (let i = 0; i < 130; i += 1) {
      reporter.failed('prometheus', { reason: 'unreachable', detail: `refused ${i}` });
      clock.advance(1_000);
    }
    expect(await errorCount(errors, 'prometheus', 'unreachable')).toBe(130);
    const logged = lines.filter((l) => l.source === 'prometheus');
    expect(logged.map((l) => [l.level, l.detail, l.suppressed])).toEqual([
      ['warn', 'refused 0', 0],
      ['warn', 'refused 60', 59],
      ['warn', 'refused 120', 59],
    ]);
  });

  it('keeps a separate interval per reason class and per source', async () => {
    const { reporter, lines, errors } = setup();
    reporter.failed('prometheus', { reason: 'unreachable', detail: 'a' });
    reporter.failed('prometheus', { reason: 'timeout', detail: 'b' });
    reporter.failed('metrics-api', { reason: 'timeout', detail: 'c' });
    reporter.failed('prometheus', { reason: 'timeout', detail: 'd' });
    expect(lines.map((l) => l.detail)).toEqual(['a', 'b', 'c']);
    expect(await errorCount(errors, 'prometheus', 'timeout')).toBe(2);
    expect(await errorCount(errors, 'metrics-api', 'timeout')).toBe(1);
  });

  it('logs a query with no series as information, not as an outage', () => {
    const { reporter, lines } = setup();
    reporter.failed('prometheus', { reason: 'no_series', detail: 'no series for x' });
    expect(lines.map((l) => l.level)).toEqual(['info']);
    reporter.answered('prometheus');
    expect(lines).toHaveLength(1);
  });

  it('says once that a source answers again after an outage was logged', () => {
    const { reporter, lines } = setup();
    reporter.answered('prometheus');
    reporter.failed('prometheus', { reason: 'timeout', detail: 'slow' });
    reporter.answered('prometheus');
    reporter.answered('prometheus');
    expect(lines.map((l) => l.msg)).toEqual([
      "load source prometheus failed (timeout); the policy's onUnavailable decides meanwhile",
      'load source prometheus answers again',
    ]);
  });
});
