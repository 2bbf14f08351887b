// Bounded memory in process: many distinct agents' reviews through the guard's review
// handler as the embedded default wires it (in-memory view and ledger with the
// configuration's defaults, static need, logLevel warn), and the process's peak resident
// memory. Not a test. By default 1,000,000 reviews from 100,000 agents, round robin, so
// that every agent is live at once (the worst case for the ledger's bound): each agent
// creates two distinct Deployments and re-creates them alternately (every review an
// allowed growth and a new episode, with a fresh object UID added to its provenance).
//
//   npm run bench:memory [-- --agents N] [--reviews N] [--max-agents N] [--max-workloads N]
//
// Under the chart's memory limit (resources.limits.memory, 512Mi), as the guard runs in its
// pod: systemd-run --scope -p MemoryMax=512M npm run bench:memory (Node sizes its heap from
// the cgroup's limit; see BENCHMARKS.md for cgroup v1 by hand).
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import { placeholderNodes } from '../src/admission/node-eligibility.ts';
import { InMemoryClusterView } from '../src/cluster/in-memory-view.ts';
import { configSchema } from '../src/config.ts';
import { benchHandler, benchLedger } from './bench-handler.ts';
import { agentBodyFactory } from './streams.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '100000' },
    reviews: { type: 'string', default: '1000000' },
    'max-agents': { type: 'string' },
    'max-workloads': { type: 'string' },
  },
});
const agents = Math.max(1, Number(values.agents));
const reviews = Math.max(1, Number(values.reviews));
const ledger = benchLedger(values['max-agents'] === undefined ? undefined : Number(values['max-agents']));
const { facts } = configSchema.parse({});
const maxWorkloads = values['max-workloads'] === undefined ? facts.maxWorkloads : Number(values['max-workloads']);
const view = new InMemoryClusterView(placeholderNodes(3), { maxWorkloads });
const handle = benchHandler({ ledger, view });
const body = agentBodyFactory('agent-allowed-fresh-agent');
const MiB = 1024 * 1024;

const started = performance.now();
let allowed = 0;
for (let i = 0; i < reviews; i++) {
  const agent = `bench-agent-${(i % agents).toString(36)}`;
  const round = Math.floor(i / agents);
  const result = await handle('validate', JSON.parse(body(agent, `${agent}-w${round % 2}`)), '10s');
  const answer = result.body as { response?: { allowed?: unknown } };
  if (answer.response?.allowed === true) allowed++;
  else throw new Error(`review ${i} of ${agent} was not allowed: ${JSON.stringify(result.body).slice(0, 400)}`);
  if ((i + 1) % 100_000 === 0) {
    const rss = process.memoryUsage().rss / MiB;
    process.stderr.write(`[memory] ${i + 1} reviews, RSS ${rss.toFixed(0)} MiB, ${ledger.agents} agent states, ${ledger.evictedAgents} evicted, ${view.size} workloads in the view\n`);
  }
}
const seconds = (performance.now() - started) / 1000;
const peakMiB = process.resourceUsage().maxRSS / 1024;
// With --expose-gc (npm run bench:memory passes it): what is kept, not garbage not yet collected.
globalThis.gc?.();
const rows = [
  '| reviews | agents | ledger.maxAgents | agent states kept | agent states evicted | wall time | reviews/s | facts.maxWorkloads | workloads in the view (forgotten) | peak RSS | heap used at the end |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  `| ${reviews.toLocaleString('en')} | ${agents.toLocaleString('en')} | ${ledger.maxAgents.toLocaleString('en')} | ${ledger.agents.toLocaleString('en')} | ${ledger.evictedAgents.toLocaleString('en')} | ${seconds.toFixed(1)} s | ${Math.round(reviews / seconds).toLocaleString('en')} | ${maxWorkloads.toLocaleString('en')} | ${view.size.toLocaleString('en')} (${view.evictions.toLocaleString('en')}) | ${peakMiB.toFixed(0)} MiB | ${(process.memoryUsage().heapUsed / MiB).toFixed(0)} MiB |`,
];
// Node sizes V8's heap from the memory limit of the process's cgroup (a container's limit),
// and V8 collects sooner under a smaller heap: say which applied.
const limit = process.constrainedMemory();
const sizing = `memory limit ${limit > 0 && limit < 2 ** 50 ? `${(limit / MiB).toFixed(0)} MiB` : 'none'}, V8 heap limit ${(getHeapStatistics().heap_size_limit / MiB).toFixed(0)} MiB`;
process.stdout.write(`Memory of the review handler in process (Node ${process.version}; ${sizing}), ${allowed} reviews allowed:\n\n${rows.join('\n')}\n`);
