// A decision's cost as the agent's family grows: part of `npm run bench:decision`.
//
// One agent creates distinct Deployments one per request (`agent-creates-distinct`), so
// its family grows by one each time, through the review handler as the embedded default
// wires it. The creates are timed in segments (the growing-family stream); at each
// measured size the growth pauses for updates of random members (2 → 3 replicas, the
// family's size unchanged), each timed on its own (the decision at that size). The
// fixed-family stream (`agent-allowed`, 16 members) runs beside it for the ratio.
import type { ReviewHandler } from '../src/admission/review-handler.ts';
import { benchHandler } from './bench-handler.ts';
import { percentile } from './stats.ts';
import { bodyFactory, familyBodyFactory } from './streams.ts';

/** Per-decision latency at one family size, in µs. */
export interface SizeCost {
  readonly size: number;
  readonly decisions: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

/** The growing-family stream's throughput while the family grew from `from` to `to` members. */
export interface GrowthSegment {
  readonly from: number;
  readonly to: number;
  readonly reviewsPerSecond: number;
}

/** What one run measured. */
export interface FamilyCost {
  readonly sizes: readonly SizeCost[];
  readonly growth: readonly GrowthSegment[];
  /** The fixed-family stream's throughput in the same process, reviews/s. */
  readonly fixedReviewsPerSecond: number;
}

async function answer(handle: ReviewHandler, review: unknown): Promise<void> {
  const result = await handle('validate', review, '10s');
  const allowed = (result.body as { response?: { allowed?: unknown } }).response?.allowed;
  if (allowed !== true) throw new Error(`the handler answered allowed=${String(allowed)}, expected true`);
}

/** Reviews per second of `count` parsed reviews answered one after the other. */
async function throughput(handle: ReviewHandler, reviews: readonly unknown[]): Promise<number> {
  const started = performance.now();
  for (const r of reviews) await answer(handle, r);
  return (reviews.length * 1000) / (performance.now() - started);
}

/** The fixed-family stream (`agent-allowed`) after a warm-up, reviews/s. */
async function fixedFamily(reviews: number): Promise<number> {
  const handle = benchHandler();
  const next = bodyFactory('agent-allowed');
  const parsed = (n: number) => Array.from({ length: n }, () => JSON.parse(next()) as unknown);
  await throughput(handle, parsed(Math.min(reviews, 5_000)));
  return throughput(handle, parsed(reviews));
}

/**
 * Grows one agent's family to each of `sizes` (ascending), timing the growth between them,
 * and times `decisions` member updates at each size.
 */
export async function familyCost(sizes: readonly number[], decisions: number, fixedReviews: number): Promise<FamilyCost> {
  const handle = benchHandler();
  const bodies = familyBodyFactory();
  let members = 0;
  const growth: GrowthSegment[] = [];
  const result: SizeCost[] = [];
  // Segments of at most 1,000 creates: the throughput where the family is small and where it is large.
  const step = 1_000;
  for (const size of sizes) {
    while (members < size) {
      const from = members;
      const to = Math.min(size, from + step);
      const reviews = Array.from({ length: to - from }, (_, k) => JSON.parse(bodies.create(from + k)) as unknown);
      growth.push({ from, to, reviewsPerSecond: await throughput(handle, reviews) });
      members = to;
    }
    const times: number[] = [];
    for (let d = 0; d < decisions; d++) {
      const review = JSON.parse(bodies.update(Math.floor(Math.random() * members))) as unknown;
      const started = performance.now();
      await answer(handle, review);
      times.push((performance.now() - started) * 1000);
    }
    times.sort((a, b) => a - b);
    result.push({
      size,
      decisions,
      p50Us: percentile(times, 50),
      p99Us: percentile(times, 99),
      maxUs: times.at(-1) ?? 0,
    });
    process.stderr.write(`[decision-cost] family of ${size} done\n`);
  }
  return { sizes: result, growth, fixedReviewsPerSecond: await fixedFamily(fixedReviews) };
}

/** The run as markdown tables. */
export function familyCostReport(cost: FamilyCost): string {
  const sizeRows = cost.sizes.map(
    (s) =>
      `| ${s.size.toLocaleString('en-US')} | ${s.decisions} | ${s.p50Us.toFixed(1)} | ${s.p99Us.toFixed(1)} | ${s.maxUs.toFixed(1)} | ${s.p99Us < 1000 ? 'yes' : 'no'} |`,
  );
  const worst = cost.growth.reduce((a, b) => (b.reviewsPerSecond < a.reviewsPerSecond ? b : a), cost.growth[0] ?? { from: 0, to: 0, reviewsPerSecond: 0 });
  const ratio = cost.fixedReviewsPerSecond > 0 ? worst.reviewsPerSecond / cost.fixedReviewsPerSecond : 0;
  const shown = cost.growth.filter((g, i) => i === 0 || g.to % 5_000 === 0 || i === cost.growth.length - 1 || g === worst);
  const growthRows = shown.map(
    (g) => `| ${g.from.toLocaleString('en-US')} → ${g.to.toLocaleString('en-US')} | ${g.reviewsPerSecond.toFixed(0)} | ${(g.reviewsPerSecond / cost.fixedReviewsPerSecond).toFixed(2)} |`,
  );
  return [
    'A decision (a member updated 2 → 3, the family unchanged) by family size, µs per review, parsed body, in process:',
    '',
    '| family members | decisions | p50 (µs) | p99 (µs) | max (µs) | p99 < 1 ms |',
    '|---:|---:|---:|---:|---:|:-:|',
    ...sizeRows,
    '',
    `The growing-family stream (one create per request, each a new member) against the fixed-family stream (agent-allowed, 16 members: ${cost.fixedReviewsPerSecond.toFixed(0)} reviews/s):`,
    '',
    '| family while growing | reviews/s | ÷ fixed family |',
    '|---|---:|---:|',
    ...growthRows,
    '',
    `Slowest segment ${worst.from.toLocaleString('en-US')} → ${worst.to.toLocaleString('en-US')}: ${ratio.toFixed(2)}× the fixed family's throughput (target ≥ 0.5×: ${ratio >= 0.5 ? 'met' : 'not met'}).`,
    '',
  ].join('\n');
}
