import { type Logger, pino } from 'pino';
import { Registry } from 'prom-client';
import { placeholderNodes } from '../src/admission/node-eligibility.ts';
import { createReviewHandler, type ReviewHandler } from '../src/admission/review-handler.ts';
import { systemClock } from '../src/clock.ts';
import { InMemoryLedger } from '../src/cluster/in-memory-ledger.ts';
import { configSchema } from '../src/config.ts';
import { InMemoryClusterView } from '../src/cluster/in-memory-view.ts';
import { StaticLoadSource } from '../src/load/static-load-source.ts';
import { compileAgentMatcher } from '../src/policy/agent-matcher.ts';
import { formatProblem, parsePolicyText } from '../src/policy/policy-loader.ts';
import type { Recorder } from '../src/record/recorder.ts';
import { createMetrics } from '../src/telemetry/metrics.ts';
import { BENCH_POLICY } from './bench-policy.ts';

/** What a benchmark may change in the embedded default's wiring. */
export interface BenchHandlerOptions {
  readonly recorder?: Recorder | undefined;
  /** The in-memory ledger, made by the caller to read its counts (default: as `npm start` makes it). */
  readonly ledger?: InMemoryLedger | undefined;
  /** The embedded view, made by the caller to read its size. */
  readonly view?: InMemoryClusterView | undefined;
  /** The logger (default: pino at warn, so that no audit line is written). */
  readonly logger?: Logger | undefined;
}

/**
 * The review handler as the embedded default wires it (in-memory view and ledger with the
 * configuration's defaults, static need, logLevel warn) under the bench policy; with a
 * recorder when one is given.
 */
export function benchHandler(options: BenchHandlerOptions = {}): ReviewHandler {
  const { recorder } = options;
  const { policies, problems } = parsePolicyText(BENCH_POLICY, 'bench.yaml');
  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map(formatProblem).join('\n'));
  const active = { policies, matcher: compileAgentMatcher(policies) };
  return createReviewHandler({
    policies: () => active,
    view: options.view ?? new InMemoryClusterView(placeholderNodes(3)),
    loadSource: new StaticLoadSource(),
    ledger: options.ledger ?? benchLedger(),
    clock: systemClock,
    logger: options.logger ?? pino({ level: 'warn' }),
    metrics: createMetrics(new Registry()),
    scaleResources: [],
    deadlineMarginMs: 2_000,
    defaultTimeoutMs: 10_000,
    maxStalenessMs: 60_000,
    recorder,
  });
}

/** The in-memory ledger with the configuration's defaults (`ledger.*`), or the given bound of agents. */
export function benchLedger(maxAgents?: number): InMemoryLedger {
  const { ledger } = configSchema.parse({});
  return new InMemoryLedger({ windowMs: ledger.window, maxEpisodes: ledger.maxEpisodes, maxAgents: maxAgents ?? ledger.maxAgents });
}
