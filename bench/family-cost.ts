// A decision's cost as the agent's family grows: part of `npm run bench:decision`.
//
// After a warm-up with a family of its own, one agent creates distinct Deployments one per
// request (`agent-creates-distinct`), so its family grows by one each time, through the
// review handler as the embedded default wires it. Each create is timed, and the times
// summed per segment of 1,000 (the growing-family stream's throughput); at each measured
// size the growth pauses for updates of random members (2 → 3 replicas, the family's size
// unchanged), each timed on its own (the decision at that size). The fixed-family stream
// (`agent-allowed`, 16 members) runs after it in the same process, for the ratio.
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

/** Reviews per second of parsed reviews answered one after the other. */
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

/** Creates at most this many per growth segment: the throughput where the family is small and where it is large. */
const SEGMENT = 1_000;

/**
 * Makes the code hot before anything is timed, with a family of its own: the first
 * family measured must not pay for the compiler.
 */
async function warmUp(): Promise<void> {
  const handle = benchHandler();
  const bodies = familyBodyFactory();
  for (let i = 0; i < 3_000; i++) await answer(handle, JSON.parse(bodies.create(i)));
  for (let i = 0; i < 3_000; i++) await answer(handle, JSON.parse(bodies.update(i)));
}

/**
 * Grows one agent's family to each of `sizes` (ascending), timing every create (summed per
 * segment of {@link SEGMENT}), and times `decisions` member updates at each size.
 */
export async function familyCost(sizes: readonly number[], decisions: number, fixedReviews: number): Promise<FamilyCost> {
  await warmUp();
  const handle = benchHandler();
  const bodies = familyBodyFactory();
  const largest = sizes.at(-1) ?? 0;
  const createMs = new Float64Array(largest);
  let members = 0;
  const result: SizeCost[] = [];
  for (const size of sizes) {
    for (; members < size; members++) {
      const review = JSON.parse(bodies.create(members)) as unknown;
      const started = performance.now();
      await answer(handle, review);
      createMs[members] = performance.now() - started;
    }
    const times: number[] = [];
    for (let d = 0; d < decisions; d++) {
      const review = JSON.parse(bodies.update(Math.floor(Math.random() * members))) as unknown;
      const started = performance.now();
      await answer(handle, review);
      times.push((performance.now() - started) * 1000);
    }
    times.sort((a, b) => a - b);
    result.push({ size, decisions, p50Us: percentile(times, 50), p99Us: percentile(times, 99), maxUs: times.at(-1) ?? 0 });
    process.stderr.write(`[decision-cost] family of ${size} done\n`);
  }
  const growth: GrowthSegment[] = [];
  for (let from = 0; from < largest; from += SEGMENT) {
    const to = Math.min(largest, from + SEGMENT);
    let ms = 0;
    for (let i = from; i < to; i++) ms += createMs[i] ?? 0;
    growth.push({ from, to, reviewsPerSecond: ((to - from) * 1000) / ms });
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
