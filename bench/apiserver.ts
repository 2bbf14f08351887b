// `npm run bench:apiserver`: what admission adds to an agent's write as the API server
// and its client see it, on the real kube-apiserver and etcd of the cluster test tier.
// Not a test. See BENCHMARKS.md.
//
// Four set-ups on one API server: no admission; a ValidatingAdmissionPolicy (a CEL cap on
// spec.replicas); a minimal Node webhook that parses the review and allows it, registered
// as the guard is (mutating and validating, same rules and matchConditions); the guard in
// cluster mode with its ConfigMap ledger. They take turns in rounds, each round in another
// order, and each round's share of the writes is pooled per set-up. Two loads each:
// sequential PATCHes of deployments/w/scale alternating 2 ↔ 3 (reported together and as
// scale-ups and scale-downs), and 8 writers on one object; for the guard also sequential
// scale-ups it denies, compared with the scale-ups the others allow. The client's latency
// and the API server's own apiserver_admission_webhook_admission_duration_seconds are
// reported side by side.
//
//   npm run bench:apiserver               5 rounds: 500 sequential writes, 8 × 100 concurrent, 300 to warm up, per set-up
//   npm run bench:apiserver -- --quick    2 rounds: 100 sequential, 8 × 25, 100 to warm up
import { createServer as createHttpsServer, type Server } from 'node:https';
import { parseArgs } from 'node:util';
import { generateCertificateAuthority, generateServingCertificate } from '../src/tls/certificates.ts';
import { policy } from '../test/helpers/guard.ts';
import { type ClusterGuard, registerWebhooksFor, reviewsAnswered, startClusterGuard, startGuardedPlane, unregisterWebhooks, type WebhookEndpoint } from '../test/cluster/cluster-guard.ts';
import { ADMIN, ControlPlane, type Identity, serviceAccountIdentity } from '../test/cluster/control-plane.ts';
import { deployment, pathOf } from '../test/cluster/workloads.ts';
import { cpuSnapshot, cpuUsage } from './cpu-usage.ts';
import { percentile } from './stats.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const SEQUENTIAL = values.quick ? 100 : 500;
const PER_WRITER = values.quick ? 25 : 100;
const WRITERS = 8;
/** Writes before each set-up's measurements: the API server's, etcd's and a fresh webhook's code warms up unmeasured. */
const WARM_UP = values.quick ? 100 : 300;
/** Each set-up's loads are split into this many rounds, the set-ups taking turns. */
const ROUNDS = values.quick ? 2 : 5;

const agent = serviceAccountIdentity('agents', 'bench');

/** One set-up's figures for one load. */
interface Row {
  readonly setup: string;
  readonly load: string;
  readonly p50: number;
  readonly p99: number;
  readonly webhookP50: number | undefined;
  readonly webhookP99: number | undefined;
  /** The webhook process's CPU time (user + system) per write, ms, where it runs in a process of its own. */
  readonly cpuPerWriteMs: number | undefined;
}

async function scaleOnce(plane: ControlPlane, who: Identity, replicas: number, expected = 200): Promise<number> {
  const started = process.hrtime.bigint();
  const answer = await plane.api(who, `${pathOf('deployments', 'agents', 'w')}/scale`, {
    method: 'PATCH',
    body: { spec: { replicas } },
    contentType: 'application/merge-patch+json',
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (answer.status !== expected) throw new Error(`scale to ${replicas}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
  return ms;
}

/** Each load's client times, split by kind of write. */
type Times = Readonly<Record<string, number[]>>;

/** Sequential writes alternating 2 ↔ 3: the scale-ups and the scale-downs, and both together. */
async function sequential(plane: ControlPlane, share: number): Promise<Times> {
  const ups: number[] = [];
  const downs: number[] = [];
  for (let i = 0; i < SEQUENTIAL * share; i++) {
    if (i % 2 === 0) ups.push(await scaleOnce(plane, agent, 3));
    else downs.push(await scaleOnce(plane, agent, 2));
  }
  return { sequential: [...ups, ...downs], 'sequential ups': ups, 'sequential downs': downs };
}

/** Sequential scale-ups the guard denies (2 → 50, far past its need): only the guard refuses them. */
async function denials(plane: ControlPlane, share: number): Promise<Times> {
  const times: number[] = [];
  for (let i = 0; i < (SEQUENTIAL / 2) * share; i++) times.push(await scaleOnce(plane, agent, 50, 403));
  return { 'sequential denials': times };
}

async function concurrent(plane: ControlPlane, share: number): Promise<Times> {
  const times: number[] = [];
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; i < PER_WRITER * share; i++) times.push(await scaleOnce(plane, agent, (i + w) % 2 === 0 ? 3 : 2));
    }),
  );
  return { [`${WRITERS} writers`]: times };
}

/** The API server's webhook latency histogram, summed over webhooks and operations: bucket bound → count. */
async function webhookHistogram(plane: ControlPlane): Promise<Map<number, number>> {
  const answer = await plane.api<string>(ADMIN, '/metrics');
  const buckets = new Map<number, number>();
  for (const line of String(answer.body).split('\n')) {
    if (!line.startsWith('apiserver_admission_webhook_admission_duration_seconds_bucket{')) continue;
    if (!line.includes('type="validating"')) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + value);
  }
  return buckets;
}

/** A quantile of a histogram's added counts, at the bucket's upper bound (ms). */
function histogramQuantile(added: Map<number, number>, q: number): number | undefined {
  const bounds = [...added.keys()].sort((a, b) => a - b);
  const total = added.get(Number.POSITIVE_INFINITY) ?? 0;
  if (total <= 0) return undefined;
  for (const b of bounds) {
    if ((added.get(b) ?? 0) >= q * total) return b * 1000;
  }
  return undefined;
}

/** One set-up's samples, pooled over the rounds: client times per load, and the API server's histogram deltas. */
interface Samples {
  readonly times: Map<string, number[]>;
  /** Per load that the API server's histogram covers whole: bucket bound → count added. */
  readonly webhook: Map<string, Map<number, number>>;
  /** Per load run whole: the webhook process's CPU seconds and the writes they served. */
  readonly cpu: Map<string, { seconds: number; writes: number }>;
}

/** A way of admitting the agent's writes, switched on and off between rounds. */
interface Setup {
  readonly name: string;
  readonly loads: readonly ((plane: ControlPlane, share: number) => Promise<Times>)[];
  enter(): Promise<void>;
  leave(): Promise<void>;
  /** The process answering its admission calls, when it is not this one: its CPU time is read per load. */
  readonly pid?: number | undefined;
}

/** Runs one set-up's loads once (its share of every load), adding to its samples. */
async function measureRound(plane: ControlPlane, setup: Setup, samples: Samples, share: number): Promise<void> {
  for (let i = 0; i < WARM_UP / ROUNDS; i++) await scaleOnce(plane, agent, i % 2 === 0 ? 3 : 2);
  for (const run of setup.loads) {
    await scaleOnce(plane, agent, 2);
    const before = await webhookHistogram(plane);
    const cpuBefore = cpuSnapshot({ webhook: setup.pid });
    const split = await run(plane, share);
    const cpu = cpuUsage(cpuBefore, cpuSnapshot({ webhook: setup.pid })).processSeconds.webhook;
    const after = await webhookHistogram(plane);
    for (const [load, times] of Object.entries(split)) {
      samples.times.set(load, [...(samples.times.get(load) ?? []), ...times]);
      // The API server's histogram and the CPU time cover the whole run, not one kind of write.
      if (Object.keys(split).length > 1 && load !== 'sequential') continue;
      if (cpu !== undefined) {
        const sum = samples.cpu.get(load) ?? { seconds: 0, writes: 0 };
        samples.cpu.set(load, { seconds: sum.seconds + cpu, writes: sum.writes + times.length });
      }
      const pooled = samples.webhook.get(load) ?? new Map<number, number>();
      for (const [bound, count] of after) pooled.set(bound, (pooled.get(bound) ?? 0) + count - (before.get(bound) ?? 0));
      samples.webhook.set(load, pooled);
    }
  }
}

/**
 * Every set-up in turn, ROUNDS times, each round in another order: drift of the API
 * server and of the machine over the run (warm-up, compaction, other load) falls on all
 * set-ups alike instead of on whichever runs last.
 */
async function measureAll(plane: ControlPlane, setups: readonly Setup[]): Promise<Row[]> {
  const samples = new Map(setups.map((s) => [s.name, { times: new Map(), webhook: new Map(), cpu: new Map() } satisfies Samples]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = setups.map((_, i) => setups[(i + round) % setups.length]).filter((s) => s !== undefined);
    for (const setup of order) {
      await setup.enter();
      const into = samples.get(setup.name);
      if (into !== undefined) await measureRound(plane, setup, into, 1 / ROUNDS);
      await setup.leave();
      process.stderr.write(`[bench:apiserver] round ${round + 1} of ${ROUNDS}: ${setup.name} done\n`);
    }
  }
  const rows: Row[] = [];
  for (const setup of setups) {
    const pooled = samples.get(setup.name);
    for (const [load, unsorted] of pooled?.times ?? []) {
      const times = [...unsorted].sort((a, b) => a - b);
      const histogram = pooled?.webhook.get(load);
      rows.push({
        setup: setup.name,
        load,
        p50: percentile(times, 50),
        p99: percentile(times, 99),
        webhookP50: histogram && histogramQuantile(histogram, 0.5),
        webhookP99: histogram && histogramQuantile(histogram, 0.99),
        cpuPerWriteMs: cpuPerWrite(pooled?.cpu.get(load)),
      });
    }
  }
  return rows;
}

/** CPU ms per write (the clock ticks every 10 ms: hundreds of writes make that error small). */
function cpuPerWrite(cpu: { seconds: number; writes: number } | undefined): number | undefined {
  return cpu === undefined || cpu.writes === 0 ? undefined : (cpu.seconds * 1000) / cpu.writes;
}

/** A webhook that parses the review and allows it: what any webhook costs at the least. */
async function minimalWebhook(): Promise<{ server: Server; url: string; caPem: string; calls: () => number }> {
  let calls = 0;
  const now = new Date();
  const ca = await generateCertificateAuthority({ now });
  const serving = await generateServingCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now });
  const server = createHttpsServer({ cert: serving.cert, key: serving.key, keepAliveTimeout: 120_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      calls++;
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request?: { uid?: string } };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request?.uid, allowed: true } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { server, url: `https://127.0.0.1:${port}`, caPem: ca.cert, calls: () => calls };
}

const ADMISSION = '/apis/admissionregistration.k8s.io/v1';

/** A dry-run scale-up by the agent: the admission in force sees it, nothing is stored. */
function probeWrite(plane: ControlPlane, replicas: number) {
  return plane.api(agent, `${pathOf('deployments', 'agents', 'w')}/scale?dryRun=All`, {
    method: 'PATCH',
    body: { spec: { replicas } },
    contentType: 'application/merge-patch+json',
  });
}

/** Probes until `inForce` says what is wanted: the API server fills its admission caches from watches. */
async function waitUntil(what: string, inForce: () => Promise<boolean>, wanted: boolean): Promise<void> {
  for (let i = 0; ; i++) {
    if ((await inForce()) === wanted) return;
    if (i > 150) throw new Error(`${what} never ${wanted ? 'took effect' : 'went out of force'}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A ValidatingAdmissionPolicy capping spec.replicas with CEL, in force until `leave`. */
function policySetup(plane: ControlPlane): Setup {
  const refused = async () => [422, 403].includes((await probeWrite(plane, 9)).status);
  return {
    name: 'ValidatingAdmissionPolicy',
    loads: [sequential, concurrent],
    async enter() {
      await plane.must(ADMIN, `${ADMISSION}/validatingadmissionpolicies`, {
        body: {
          apiVersion: 'admissionregistration.k8s.io/v1',
          kind: 'ValidatingAdmissionPolicy',
          metadata: { name: 'bench-cap' },
          spec: {
            failurePolicy: 'Fail',
            matchConstraints: { resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments/scale'] }] },
            matchConditions: [{ name: 'agents', expression: "request.userInfo.username.startsWith('system:serviceaccount:agents:')" }],
            validations: [{ expression: 'object.spec.replicas <= 4', message: 'at most 4 replicas' }],
          },
        },
      });
      await plane.must(ADMIN, `${ADMISSION}/validatingadmissionpolicybindings`, {
        body: {
          apiVersion: 'admissionregistration.k8s.io/v1',
          kind: 'ValidatingAdmissionPolicyBinding',
          metadata: { name: 'bench-cap' },
          spec: { policyName: 'bench-cap', validationActions: ['Deny'] },
        },
      });
      await waitUntil('the ValidatingAdmissionPolicy', refused, true);
    },
    async leave() {
      await plane.api(ADMIN, `${ADMISSION}/validatingadmissionpolicybindings/bench-cap`, { method: 'DELETE' });
      await plane.api(ADMIN, `${ADMISSION}/validatingadmissionpolicies/bench-cap`, { method: 'DELETE' });
      await waitUntil('the ValidatingAdmissionPolicy', refused, false);
    },
  };
}

/** A webhook endpoint registered as the guard is, in force until `leave`; `calls` counts the reviews it answered. */
function webhookSetup(plane: ControlPlane, name: string, endpoint: WebhookEndpoint, calls: () => Promise<number>, loads: Setup['loads']): Setup {
  const called = async () => {
    const before = await calls();
    await probeWrite(plane, 3);
    return (await calls()) > before;
  };
  return {
    name,
    loads,
    async enter() {
      await registerWebhooksFor(plane, [endpoint]);
      await waitUntil(name, called, true);
    },
    async leave() {
      await unregisterWebhooks(plane);
      await waitUntil(name, called, false);
    },
  };
}

function table(rows: readonly Row[]): string {
  const ms = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(1));
  const none = new Map(rows.filter((r) => r.setup === 'none').map((r) => [r.load, r]));
  const minimal = new Map(rows.filter((r) => r.setup === 'minimal webhook').map((r) => [r.load, r]));
  const lines = [
    '| admission | load | p50 ms | p99 ms | added p50 | added p99 | × minimal (p50 / p99) | API server webhook p50 / p99 ms | webhook CPU ms per write |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    // A denial is compared with the scale-ups the other set-ups allow: the same request.
    const baseLoad = r.load === 'sequential denials' ? 'sequential ups' : r.load;
    const base = none.get(baseLoad);
    const added50 = base ? r.p50 - base.p50 : undefined;
    const added99 = base ? r.p99 - base.p99 : undefined;
    const m = minimal.get(baseLoad);
    const ratio =
      m && base && r.setup !== 'none' && r.setup !== 'minimal webhook'
        ? `${((r.p50 - base.p50) / (m.p50 - base.p50)).toFixed(2)} / ${((r.p99 - base.p99) / (m.p99 - base.p99)).toFixed(2)}`
        : '—';
    lines.push(
      `| ${r.setup} | ${r.load} | ${ms(r.p50)} | ${ms(r.p99)} | ${r.setup === 'none' ? '—' : ms(added50)} | ${r.setup === 'none' ? '—' : ms(added99)} | ${ratio} | ${ms(r.webhookP50)} / ${ms(r.webhookP99)} | ${r.cpuPerWriteMs === undefined ? '—' : r.cpuPerWriteMs.toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}

const plane = await startGuardedPlane([agent], ['agents']);
let guard: ClusterGuard | undefined;
let minimal: Server | undefined;
try {
  await plane.must(ADMIN, pathOf('deployments', 'agents'), { body: deployment('agents', 'w', 2, 'bench') });

  const webhook = await minimalWebhook();
  minimal = webhook.server;
  guard = await startClusterGuard(
    plane,
    policy('bench', {
      mode: 'enforce',
      agents: { serviceAccounts: ['agents:*'] },
      need: { static: 3, onUnavailable: 'deny' },
      limits: { headroom: 1, perFamily: 20 },
    }),
  );
  const started = guard;
  const rows = await measureAll(plane, [
    { name: 'none', loads: [sequential, concurrent], enter: async () => undefined, leave: async () => undefined },
    policySetup(plane),
    webhookSetup(plane, 'minimal webhook', { url: webhook.url, caPem: webhook.caPem }, async () => webhook.calls(), [sequential, concurrent]),
    {
      ...webhookSetup(plane, 'replica-guard', { url: started.process.webhookUrl, caPem: started.caPem }, () => reviewsAnswered(started, 'validate'), [sequential, denials, concurrent]),
      pid: started.process.child.pid,
    },
  ]);

  process.stdout.write(`${table(rows)}\n`);
} finally {
  await guard?.stop();
  minimal?.close();
  await plane.stop();
}
