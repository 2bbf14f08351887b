import { pino } from 'pino';
import { Registry } from 'prom-client';
import { placeholderNodes } from '../src/admission/node-eligibility.ts';
import { createReviewHandler, type ReviewHandler } from '../src/admission/review-handler.ts';
import { systemClock } from '../src/clock.ts';
import { InMemoryLedger } from '../src/cluster/in-memory-ledger.ts';
import { InMemoryClusterView } from '../src/cluster/in-memory-view.ts';
import { StaticLoadSource } from '../src/load/static-load-source.ts';
import { compileAgentMatcher } from '../src/policy/agent-matcher.ts';
import { formatProblem, parsePolicyText } from '../src/policy/policy-loader.ts';
import type { Recorder } from '../src/record/recorder.ts';
import { createMetrics } from '../src/telemetry/metrics.ts';
import { BENCH_POLICY } from './bench-policy.ts';

/**
 * The review handler as the embedded default wires it (in-memory view and ledger, static
 * need, logLevel warn) under the bench policy; with a recorder when one is given.
 */
export function benchHandler(recorder?: Recorder): ReviewHandler {
  const { policies, problems } = parsePolicyText(BENCH_POLICY, 'bench.yaml');
  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map(formatProblem).join('\n'));
  const active = { policies, matcher: compileAgentMatcher(policies) };
  return createReviewHandler({
    policies: () => active,
    view: new InMemoryClusterView(placeholderNodes(3)),
    loadSource: new StaticLoadSource(),
    ledger: new InMemoryLedger({ windowMs: 3_600_000, maxEpisodes: 100_000 }),
    clock: systemClock,
    logger: pino({ level: 'warn' }),
    metrics: createMetrics(new Registry()),
    scaleResources: [],
    deadlineMarginMs: 2_000,
    defaultTimeoutMs: 10_000,
    maxStalenessMs: 60_000,
    recorder,
  });
}
