// A decision's cost as the agent's family grows: part of `npm run bench:decision`.
//
// After a warm-up with a family of its own, one agent creates distinct Deployments one per
// request (`agent-creates-distinct`), so its family grows by one each time, through the
// review handler as the embedded default wires it. Each create is timed, and the times
// summed per segment of 1,000 (the growing-family stream's throughput); at each measured
// size the growth pauses for updates of random members (2 → 3 replicas, the family's size
// unchanged), each timed on its own (the decision at that size). After each segment the
// fixed-family stream (`agent-allowed`, 16 members) runs as many reviews in the same
// process, for the ratio. The whole runs in rounds (a new agent each), and each
// segment's ratio is its median over the rounds.
import type { ReviewHandler } from '../src/admission/review-handler.ts';
import { benchHandler } from './bench-handler.ts';
import { median, percentile } from './stats.ts';
import { bodyFactory, familyBodyFactory } from './streams.ts';

/** Per-decision latency at one family size, in µs, pooled over the rounds. */
export interface SizeCost {
  readonly size: number;
  readonly decisions: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

/** The growing-family stream's throughput while the family grew from `from` to `to` members, against the fixed family's right after. */
export interface GrowthSegment {
  readonly from: number;
  readonly to: number;
  /** Each round's growing-family reviews/s, in round order. */
  readonly perRound: readonly number[];
  /** Each round's fixed-family reviews/s over the segment that followed, in round order. */
  readonly fixedPerRound: readonly number[];
  /** The median over the rounds of growing ÷ fixed. */
  readonly ratio: number;
}

/** What one run measured. */
export interface FamilyCost {
  readonly rounds: number;
  readonly sizes: readonly SizeCost[];
  readonly growth: readonly GrowthSegment[];
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

/** Creates per growth segment: the throughput where the family is small and where it is large. */
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

/** The fixed-family stream (`agent-allowed`, 16 members), warmed up: one segment's reviews/s per call. */
async function fixedFamily(): Promise<() => Promise<number>> {
  const handle = benchHandler();
  const next = bodyFactory('agent-allowed');
  // Parsed before the clock starts: parsing is not the guard's work.
  const parsed = (n: number) => Array.from({ length: n }, () => JSON.parse(next()) as unknown);
  await throughput(handle, parsed(5_000));
  return () => throughput(handle, parsed(SEGMENT));
}

interface Round {
  readonly segments: readonly { readonly from: number; readonly to: number; readonly growing: number; readonly fixed: number }[];
  readonly decisionUs: readonly number[][];
}

/**
 * One round: a new agent's family grown to each size, each segment of creates followed by
 * a segment of the fixed family's updates (both handlers alive, so both see the same heap
 * and the same machine), and the decisions' times at each size.
 */
async function growOnce(sizes: readonly number[], decisions: number): Promise<Round> {
  const fixedSegment = await fixedFamily();
  const handle = benchHandler();
  const bodies = familyBodyFactory();
  const largest = sizes.at(-1) ?? 0;
  const segments: { from: number; to: number; growing: number; fixed: number }[] = [];
  const decisionUs: number[][] = [];
  let members = 0;
  let segmentMs = 0;
  let segmentFrom = 0;
  for (const size of sizes) {
    for (; members < size; ) {
      const review = JSON.parse(bodies.create(members)) as unknown;
      const started = performance.now();
      await answer(handle, review);
      segmentMs += performance.now() - started;
      members++;
      if (members - segmentFrom === SEGMENT || members === largest) {
        segments.push({ from: segmentFrom, to: members, growing: ((members - segmentFrom) * 1000) / segmentMs, fixed: await fixedSegment() });
        segmentFrom = members;
        segmentMs = 0;
      }
    }
    const times: number[] = [];
    for (let d = 0; d < decisions; d++) {
      const review = JSON.parse(bodies.update(Math.floor(Math.random() * members))) as unknown;
      const started = performance.now();
      await answer(handle, review);
      times.push((performance.now() - started) * 1000);
    }
    decisionUs.push(times);
  }
  return { segments, decisionUs };
}

/** A growing segment's rate over its fixed-family pair's; 0 when either is missing. */
function pairRatio(growing: number | undefined, fixed: number | undefined): number {
  return growing !== undefined && fixed !== undefined && fixed > 0 ? growing / fixed : 0;
}

/**
 * Grows a new agent's family to each of `sizes` (ascending) in each of `rounds` rounds,
 * timing every create (summed per segment of {@link SEGMENT}), each segment followed by
 * as many reviews of the fixed-family stream, and `decisions` member updates at each
 * size. A segment lasts about a tenth of a second, so one collection of the old
 * generation or a neighbour's burst on a shared core moves it by half: each segment is
 * compared with the fixed family's segment right after it, and its ratio is the median
 * over the rounds.
 */
export async function familyCost(sizes: readonly number[], decisions: number, rounds = 3): Promise<FamilyCost> {
  await warmUp();
  const pooled: number[][] = sizes.map(() => []);
  const results: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    const round = await growOnce(sizes, decisions);
    round.decisionUs.forEach((times, i) => pooled[i]?.push(...times));
    results.push(round);
    process.stderr.write(`[decision-cost] family round ${r + 1} of ${rounds} done\n`);
  }
  const sizeCosts = sizes.map((size, i) => {
    const times = (pooled[i] ?? []).sort((a, b) => a - b);
    return { size, decisions: times.length, p50Us: percentile(times, 50), p99Us: percentile(times, 99), maxUs: times.at(-1) ?? 0 };
  });
  const growth = (results[0]?.segments ?? []).map((segment, i) => {
    const perRound = results.map((round) => round.segments[i]?.growing ?? 0);
    const fixedPerRound = results.map((round) => round.segments[i]?.fixed ?? 0);
    const ratio = median(perRound.map((g, r) => pairRatio(g, fixedPerRound[r])));
    return { from: segment.from, to: segment.to, perRound, fixedPerRound, ratio };
  });
  return { rounds, sizes: sizeCosts, growth };
}

/** The run as markdown tables. */
export function familyCostReport(cost: FamilyCost): string {
  const sizeRows = cost.sizes.map(
    (s) =>
      `| ${s.size.toLocaleString('en-US')} | ${s.decisions} | ${s.p50Us.toFixed(1)} | ${s.p99Us.toFixed(1)} | ${s.maxUs.toFixed(1)} | ${s.p99Us < 1000 ? 'yes' : 'no'} |`,
  );
  const worst = cost.growth.reduce<GrowthSegment | undefined>((a, b) => (a === undefined || b.ratio < a.ratio ? b : a), undefined);
  const shown = cost.growth.filter((g, i) => i === 0 || g.to % 5_000 === 0 || i === cost.growth.length - 1 || g === worst);
  const rates = (list: readonly number[]) => list.map((n) => n.toFixed(0)).join(', ');
  const growthRows = shown.map(
    (g) => `| ${g.from.toLocaleString('en-US')} → ${g.to.toLocaleString('en-US')} | ${rates(g.perRound)} | ${rates(g.fixedPerRound)} | ${g.ratio.toFixed(2)} |`,
  );
  // The slowest segment of each round on its own: how far one round strays from the medians.
  const roundWorst = Array.from({ length: cost.rounds }, (_, r) =>
    Math.min(...cost.growth.map((g) => pairRatio(g.perRound[r], g.fixedPerRound[r]))).toFixed(2),
  );
  const ratio = worst?.ratio ?? 0;
  const plural = cost.rounds === 1 ? '' : 's';
  return [
    `A decision (a member updated 2 → 3, the family unchanged) by family size, µs per review, parsed body, in process, pooled over ${cost.rounds} round${plural}:`,
    '',
    '| family members | decisions | p50 (µs) | p99 (µs) | max (µs) | p99 < 1 ms |',
    '|---:|---:|---:|---:|---:|:-:|',
    ...sizeRows,
    '',
    `The growing-family stream (one create per request, each a new member), each segment of ${SEGMENT.toLocaleString('en-US')} creates followed by as many reviews of the fixed-family stream (agent-allowed, 16 members) in the same process, ${cost.rounds} round${plural}; reviews/s per round, and the median over the rounds of growing ÷ fixed:`,
    '',
    '| family while growing | growing: reviews/s | fixed family right after: reviews/s | growing ÷ fixed (median) |',
    '|---|---:|---:|---:|',
    ...growthRows,
    '',
    worst === undefined
      ? 'No growth segment was measured.'
      : `Slowest segment ${worst.from.toLocaleString('en-US')} → ${worst.to.toLocaleString('en-US')}: ${ratio.toFixed(2)}× the fixed family's throughput (target ≥ 0.5×: ${ratio >= 0.5 ? 'met' : 'not met'}). Each round's slowest segment on its own: ${roundWorst.join(', ')}.`,
    '',
  ].join('\n');
}
