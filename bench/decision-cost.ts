// The review path's own cost, in process: the guard's review handler called directly with
// the parsed body, as the embedded default wires it (in-memory view and ledger, static
// need, logLevel warn), without HTTP, TLS or the load generator. What one review costs
// beyond JSON.parse, per stream, so that the decision's share of a webhook round trip can
// be told from the machine's. Not a test; single-threaded; about half a minute.
//
//   node bench/decision-cost.ts [--stream NAME]... [--chunks N] [--audit sync|async]
//                               [--family-sizes 10,1000,20000] [--family-decisions N] [--family-rounds 3]
//
// Then, unless --family-sizes is empty, the decision's cost by family size and the
// growing-family stream against the fixed-family one (family-cost.ts).
//
// --audit: at logLevel info, so that every agent decision writes its audit line, to
// stdout through pino's synchronous destination or its asynchronous one (as `serve`
// does); run with stdout sent to /dev/null or a pipe (the report goes to stderr then).
// Without it: logLevel warn, no audit line.
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { ReviewHandler } from '../src/admission/review-handler.ts';
import { benchHandler } from './bench-handler.ts';
import { familyCost, familyCostReport } from './family-cost.ts';
import { median } from './stats.ts';
import { ALL_STREAM_NAMES, bodyFactory, isStreamName, STREAMS, type StreamName } from './streams.ts';

const CHUNK = 10_000;
const WARM_UP = 5_000;

const { values } = parseArgs({
  options: {
    stream: { type: 'string', multiple: true },
    chunks: { type: 'string', default: '6' },
    audit: { type: 'string' },
    'family-sizes': { type: 'string', default: '10,1000,20000' },
    'family-decisions': { type: 'string', default: '2000' },
    'family-rounds': { type: 'string', default: '3' },
  },
});
const familySizes = values['family-sizes']
  .split(',')
  .filter((s) => s.trim() !== '')
  .map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--family-sizes: ${s} is not a positive integer`);
    return n;
  })
  .sort((a, b) => a - b);
const familyDecisions = Number(values['family-decisions']);
if (!Number.isInteger(familyDecisions) || familyDecisions < 100) throw new Error('--family-decisions is an integer of at least 100');
if (values.audit !== undefined && values.audit !== 'sync' && values.audit !== 'async') throw new Error('--audit is sync or async');
const familyRounds = Number(values['family-rounds']);
if (!Number.isInteger(familyRounds) || familyRounds < 1) throw new Error('--family-rounds is a positive integer');
const audit = values.audit;
// With audit lines on stdout, the report goes to stderr.
const report = audit === undefined ? process.stdout : process.stderr;
const streams = (values.stream ?? ALL_STREAM_NAMES.filter((s) => s !== 'agent-creates-distinct')).map((s) => {
  if (!isStreamName(s)) throw new Error(`unknown stream ${s}; one of ${ALL_STREAM_NAMES.join(', ')}`);
  return s;
});
const chunks = Math.max(1, Number(values.chunks));

const handler = (): ReviewHandler =>
  benchHandler({
    logger: audit === undefined ? undefined : pino({ level: 'info' }, pino.destination({ dest: 1, sync: audit === 'sync' })),
  });

interface StreamCost {
  readonly stream: StreamName;
  /** Median over chunks of µs per review: JSON.parse alone, and parse plus the handler. */
  readonly parseUs: number;
  readonly reviewUs: number;
}

async function measure(stream: StreamName): Promise<StreamCost> {
  const handle = handler();
  const next = bodyFactory(stream);
  const expected = STREAMS[stream].guardAllows;
  const check = (allowed: unknown) => {
    if (allowed !== expected) throw new Error(`${stream}: the handler answered allowed=${String(allowed)}, expected ${expected}`);
  };
  const answer = async (text: string) => {
    const result = await handle('validate', JSON.parse(text), '10s');
    const body = result.body as { response?: { allowed?: unknown } };
    check(body.response?.allowed);
  };
  for (let i = 0; i < WARM_UP; i++) await answer(next());
  const parse: number[] = [];
  const review: number[] = [];
  for (let c = 0; c < chunks; c++) {
    // Bodies made before the clock starts: building them is not the guard's work.
    const texts = Array.from({ length: CHUNK }, () => next());
    let started = performance.now();
    for (const t of texts) JSON.parse(t);
    parse.push(((performance.now() - started) * 1000) / CHUNK);
    started = performance.now();
    for (const t of texts) await answer(t);
    review.push(((performance.now() - started) * 1000) / CHUNK);
  }
  return { stream, parseUs: median(parse), reviewUs: median(review) };
}

const rows: string[] = [
  '| Stream | JSON.parse (µs) | parse + review handler (µs) | the handler alone (µs) |',
  '|---|---:|---:|---:|',
];
for (const stream of streams) {
  const cost = await measure(stream);
  rows.push(
    `| ${stream} | ${cost.parseUs.toFixed(1)} | ${cost.reviewUs.toFixed(1)} | ${(cost.reviewUs - cost.parseUs).toFixed(1)} |`,
  );
  process.stderr.write(`[decision-cost] ${stream} done\n`);
}
report.write(
  `Review handler cost in process (Node ${process.version}${audit === undefined ? '' : `, audit lines through pino's ${audit} destination`}), median of ${chunks} chunks of ${CHUNK} reviews after ${WARM_UP} warm-up:\n\n${rows.join('\n')}\n`,
);
if (familySizes.length > 0) {
  report.write(`\n${familyCostReport(await familyCost(familySizes, familyDecisions, familyRounds))}`);
}
