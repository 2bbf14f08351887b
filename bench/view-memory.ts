// The cluster view's memory and sync time: `npx node --expose-gc bench/view-memory.ts`.
// Not a test. For each scenario it starts the fake API server in one child process,
// loads it with workloads, pods and nodes shaped like real ones (pod templates with env,
// probes and volumes; pods with status and managedFields), then syncs a KubeView against
// it in a second child process and reports:
//
//   - resident memory of the view (RSS after gc, minus the same process's RSS before the
//     view started), and the V8 heap it holds;
//   - time to first sync (every resource listed in pages of 500);
//   - latency of the decision's lookups over the warm view: familyOf for a random agent,
//     plus the Scale-parent and HPA lookups, p50/p99/max over 20,000 calls;
//   - latency of the decision itself over the warm view (the review handler with an
//     in-memory ledger), and separately the shared ledger's compare-and-swap round trip
//     against the fake over loopback HTTP.
//
// Neither the fake's memory nor the generation of objects counts: they live in the other
// child. Options: --quick (2,000 workloads + 10,000 pods only), --scenario W:P (repeatable),
// --node-flag=F (a flag for the measuring process, e.g. --max-semi-space-size=16);
// VIEW_BENCH_DEBUG=1 prints the V8 heap spaces after the sync.
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { parseArgs } from 'node:util';

interface Scenario {
  readonly workloads: number;
  readonly pods: number;
}

interface Percentiles {
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

interface DecisionFigures extends Percentiles {
  readonly allowed: number;
  readonly denied: number;
}

interface Figures {
  readonly scenario: Scenario;
  readonly objects: number;
  readonly syncMs: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
  readonly lookup: Percentiles & { readonly meanMembers: number };
  readonly decision: DecisionFigures;
  readonly cas: Percentiles;
}

const NODES = 500;
const SERVICE_ACCOUNTS = 2_000;
const IMAGES = 400;

// ---- the fake API server child ------------------------------------------------------------

async function serve(scenario: Scenario): Promise<void> {
  const { FakeApiServer } = await import('../test/fake-apiserver/fake-apiserver.ts');
  const fake = await FakeApiServer.start({ historyLimit: 1_000, bookmarkIntervalMs: 10_000 });
  const rand = seeded(42);
  const pick = (n: number) => Math.floor(rand() * n);
  const sa = () => `agent-${pick(SERVICE_ACCOUNTS)}`;
  const namespace = () => `team-${pick(200)}`;

  for (let i = 0; i < NODES; i++) {
    fake.put('nodes', {
      metadata: {
        name: `node-${i}`,
        labels: {
          'kubernetes.io/hostname': `node-${i}`,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          'topology.kubernetes.io/zone': `zone-${i % 3}`,
          'node.kubernetes.io/instance-type': i % 10 === 0 ? 'gpu.large' : 'm.large',
          pool: i % 10 === 0 ? 'gpu' : 'general',
        },
      },
      status: { capacity: { cpu: '16', memory: '64Gi' }, conditions: [{ type: 'Ready', status: 'True' }] },
    });
  }

  // Workload mix: a ReplicaSet per Deployment, then StatefulSets, Jobs, CronJobs, HPAs, a few DaemonSets.
  const owners: { apiVersion: string; kind: string; uid: string; namespace: string; name: string; sa: string; image: string }[] = [];
  let made = 0;
  const add = (resource: string, object: Record<string, unknown> & { metadata: { name: string; namespace: string; [k: string]: unknown } }) => {
    made++;
    return fake.put(resource, object);
  };
  while (made < scenario.workloads) {
    const roll = rand();
    const ns = namespace();
    const name = `w-${made}`;
    const account = sa();
    const image = `registry.example.com/team/app-${pick(IMAGES)}:v${pick(20)}`;
    const template = podTemplate(account, image, pick(4));
    if (roll < 0.7) {
      const d = add('deployments', { metadata: { namespace: ns, name, labels: { app: name } }, spec: { replicas: 1 + pick(5), selector: { matchLabels: { app: name } }, template } });
      const rs = add('replicasets', {
        metadata: { namespace: ns, name: `${name}-7d9f8c`, ownerReferences: [owner('apps/v1', 'Deployment', d)] },
        spec: { replicas: 1 + pick(5), template },
      });
      owners.push({ apiVersion: 'apps/v1', kind: 'ReplicaSet', uid: rs.metadata.uid ?? '', namespace: ns, name: rs.metadata.name, sa: account, image });
    } else if (roll < 0.82) {
      const s = add('statefulsets', { metadata: { namespace: ns, name }, spec: { replicas: 1 + pick(3), serviceName: name, template }, status: { updateRevision: `${name}-1` } });
      owners.push({ apiVersion: 'apps/v1', kind: 'StatefulSet', uid: s.metadata.uid ?? '', namespace: ns, name, sa: account, image });
    } else if (roll < 0.9) {
      const j = add('jobs', { metadata: { namespace: ns, name }, spec: { parallelism: 1 + pick(3), completions: 5, template } });
      owners.push({ apiVersion: 'batch/v1', kind: 'Job', uid: j.metadata.uid ?? '', namespace: ns, name, sa: account, image });
    } else if (roll < 0.95) {
      add('cronjobs', { metadata: { namespace: ns, name }, spec: { schedule: '*/5 * * * *', jobTemplate: { spec: { template } } } });
    } else if (roll < 0.995) {
      add('horizontalpodautoscalers', {
        metadata: { namespace: ns, name },
        spec: { minReplicas: 1, maxReplicas: 10, scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: `w-${pick(made)}` } },
      });
    } else {
      add('daemonsets', { metadata: { namespace: ns, name }, spec: { template: { ...template, spec: { ...template.spec, nodeSelector: { pool: 'gpu' } } } } });
    }
  }
  for (let i = 0; i < scenario.pods; i++) {
    const o = owners[i % owners.length];
    if (!o) break;
    fake.put('pods', realisticPod(o, i, pick));
  }
  process.send?.({ url: fake.url, revision: fake.revision });
  process.on('message', (m) => {
    if (m === 'stop') void fake.close().then(() => process.exit(0));
  });
}

function owner(apiVersion: string, kind: string, o: { metadata: { name: string; uid?: string } }) {
  return { apiVersion, kind, name: o.metadata.name, uid: o.metadata.uid, controller: true, blockOwnerDeletion: true };
}

function podTemplate(serviceAccountName: string, image: string, variant: number) {
  return {
    metadata: { labels: { app: 'x', tier: 'backend' }, annotations: { 'prometheus.io/scrape': 'true' } },
    spec: {
      serviceAccountName,
      containers: [
        {
          name: 'main',
          image,
          command: ['/app/server'],
          args: ['--port=8080', `--mode=${variant}`],
          env: Array.from({ length: 8 }, (_, k) => ({ name: `SETTING_${k}`, value: `value-${k}-${variant}` })),
          ports: [{ containerPort: 8080, protocol: 'TCP' }],
          resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
          readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 10 },
          volumeMounts: [{ name: 'config', mountPath: '/etc/app' }],
        },
        { name: 'sidecar', image: 'registry.example.com/platform/proxy:1.9', args: ['--upstream=127.0.0.1:8080'] },
      ],
      volumes: [{ name: 'config', configMap: { name: 'app-config' } }],
    },
  };
}

function realisticPod(
  o: { apiVersion: string; kind: string; uid: string; namespace: string; name: string; sa: string; image: string },
  i: number,
  pick: (n: number) => number,
) {
  const template = podTemplate(o.sa, o.image, i % 4);
  return {
    metadata: {
      namespace: o.namespace,
      name: `${o.name}-${i.toString(36)}`,
      labels: { app: o.name, 'pod-template-hash': '7d9f8c', 'controller-revision-hash': `${o.name}-1` },
      ownerReferences: [{ apiVersion: o.apiVersion, kind: o.kind, name: o.name, uid: o.uid, controller: true, blockOwnerDeletion: true }],
      managedFields: [
        { manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2025-01-01T10:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': {}, 'f:ownerReferences': {} }, 'f:spec': { 'f:containers': {} } } },
        { manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: '2025-01-01T10:00:05Z', subresource: 'status', fieldsType: 'FieldsV1', fieldsV1: { 'f:status': { 'f:conditions': {}, 'f:containerStatuses': {}, 'f:podIP': {} } } },
      ],
    },
    spec: { ...template.spec, nodeName: `node-${pick(NODES)}`, restartPolicy: 'Always', terminationGracePeriodSeconds: 30 },
    status: {
      phase: 'Running',
      podIP: `10.${pick(255)}.${pick(255)}.${pick(255)}`,
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastTransitionTime: '2025-01-01T10:00:05Z' })),
      containerStatuses: [
        { name: 'main', ready: true, restartCount: 0, image: o.image, imageID: `${o.image}@sha256:${'a'.repeat(64)}`, state: { running: { startedAt: '2025-01-01T10:00:04Z' } } },
        { name: 'sidecar', ready: true, restartCount: 0, image: 'registry.example.com/platform/proxy:1.9', state: { running: { startedAt: '2025-01-01T10:00:04Z' } } },
      ],
    },
  };
}

/** A small deterministic generator, so that every run loads the same cluster. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- the measuring child -------------------------------------------------------------------

async function measure(url: string, scenario: Scenario): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const { KubeView } = await import('../src/cluster/kube-view.ts');
  const { familyOf } = await import('../src/core/family.ts');
  const { systemClock } = await import('../src/clock.ts');
  const settle = async () => {
    for (let i = 0; i < 4; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await settle();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;

  const started = performance.now();
  const view = new KubeView({ connection: { baseUrl: url }, clock: systemClock });
  view.start();
  await view.whenSynced();
  const syncMs = performance.now() - started;
  await settle();
  const rss1 = process.memoryUsage().rss;
  const heap1 = process.memoryUsage().heapUsed;
  if (process.env.VIEW_BENCH_DEBUG) {
    const m = process.memoryUsage();
    const v8 = await import('node:v8');
    console.error({ m, spaces: v8.getHeapSpaceStatistics().map((s) => [s.space_name, Math.round(s.space_size / 2 ** 20), Math.round(s.space_used_size / 2 ** 20)]) });
    await new Promise((r) => setTimeout(r, 5_000));
    gc();
    console.error('after 5 s idle', process.memoryUsage());
  }
  const objects = view.caches(systemClock.monotonicMs()).reduce((sum, c) => sum + c.objects, 0);

  const rand = seeded(7);
  const samples: number[] = [];
  let members = 0;
  const excluding = { group: 'apps', kind: 'Deployment', namespace: 'none', name: 'none' };
  for (let i = 0; i < 20_000; i++) {
    const name = `agent-${Math.floor(rand() * SERVICE_ACCOUNTS)}`;
    const agent = { username: `system:serviceaccount:agents:${name}`, serviceAccount: { namespace: 'agents', name } };
    const t0 = performance.now();
    const family = familyOf(agent, view, [], [], excluding);
    const target = `w-${Math.floor(rand() * scenario.workloads)}`;
    view.workload('apps', 'Deployment', `team-${Math.floor(rand() * 200)}`, target);
    view.scalerOf({ ...excluding, name: target });
    samples.push(performance.now() - t0);
    members += family.members.length;
  }
  samples.sort((a, b) => a - b);
  const q = (p: number) => (samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? 0) * 1000;
  const decision = await measureDecisions(url, view);
  const cas = await measureCompareAndSwap(url);
  await view.stop();
  const figures: Figures = {
    scenario,
    objects,
    syncMs,
    rssMiB: (rss1 - rss0) / 2 ** 20,
    heapMiB: (heap1 - heap0) / 2 ** 20,
    lookup: { p50Us: q(0.5), p99Us: q(0.99), maxUs: (samples.at(-1) ?? 0) * 1000, meanMembers: members / samples.length },
    decision,
    cas,
  };
  process.send?.(figures);
}

/** p50, p99 and max of samples in milliseconds, in microseconds. */
function percentilesUs(samplesMs: number[]): Percentiles {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) * 1000;
  return { p50Us: at(0.5), p99Us: at(0.99), maxUs: (sorted.at(-1) ?? 0) * 1000 };
}

const DECISIONS = 20_000;

/**
 * The decision itself over the warm view: the guard's review handler (parsing the review,
 * counting, the family over the view, the judgement, the ledger step, the response) for
 * an agent updating one of its Deployments to one more replica. The ledger is in memory,
 * so no round trip is included; that is measured by {@link measureCompareAndSwap}.
 */
async function measureDecisions(url: string, view: import('../src/cluster/kube-view.ts').KubeView): Promise<DecisionFigures> {
  const { createReviewHandler } = await import('../src/admission/review-handler.ts');
  const { compileAgentMatcher } = await import('../src/policy/agent-matcher.ts');
  const { parsePolicyText } = await import('../src/policy/policy-loader.ts');
  const { PolicyLoadSource } = await import('../src/load/policy-load-source.ts');
  const { InMemoryLedger } = await import('../src/cluster/in-memory-ledger.ts');
  const { createMetrics } = await import('../src/telemetry/metrics.ts');
  const { systemClock } = await import('../src/clock.ts');
  const { Registry } = await import('prom-client');
  const { pino } = await import('pino');

  const { policies, problems } = parsePolicyText(
    [
      'apiVersion: replica-guard.io/v1alpha1',
      'kind: ReplicaPolicy',
      'metadata: { name: bench }',
      'spec:',
      '  mode: enforce',
      '  agents: { serviceAccounts: ["team-*:agent-*"] }',
      '  need: { static: 3 }',
      '  limits: { headroom: 2, perFamily: 400, workloadsPerFamily: 200, rate: { instances: 1000000, per: 1h } }',
      '',
    ].join('\n'),
    'bench.yaml',
  );
  if (problems.length > 0) throw new Error(JSON.stringify(problems));
  const active = { policies, matcher: compileAgentMatcher(policies) };
  const metrics = createMetrics(new Registry());
  const logger = pino({ level: 'warn' });
  const handle = createReviewHandler({
    policies: () => active,
    view,
    loadSource: new PolicyLoadSource({ clock: systemClock, logger, errors: metrics.loadSourceErrors }),
    ledger: new InMemoryLedger({ windowMs: 3_600_000, maxEpisodes: 10_000 }),
    clock: systemClock,
    logger,
    metrics,
    scaleResources: [],
    deadlineMarginMs: 2_000,
    defaultTimeoutMs: 10_000,
    maxStalenessMs: 60_000,
  });

  // Real Deployments from the fake, as the apiserver would send them in an update.
  const res = await fetch(`${url}/apis/apps/v1/deployments?limit=2000`);
  const list = (await res.json()) as { items: { metadata: { namespace: string; name: string; uid: string }; spec: { replicas: number; template: { spec: { serviceAccountName: string } } } }[] };
  if (list.items.length === 0) throw new Error('no deployments to decide on');
  const rand = seeded(11);
  const samples: number[] = [];
  const verdicts = { allowed: 0, denied: 0 };
  for (let i = 0; i < DECISIONS; i++) {
    const d = list.items[Math.floor(rand() * list.items.length)];
    if (!d) continue;
    const sa = d.spec.template.spec.serviceAccountName;
    const object = { apiVersion: 'apps/v1', kind: 'Deployment', ...d, spec: { ...d.spec, replicas: d.spec.replicas + 1 } };
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `review-${i}`,
        kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
        resource: { group: 'apps', version: 'v1', resource: 'deployments' },
        requestKind: { group: 'apps', version: 'v1', kind: 'Deployment' },
        requestResource: { group: 'apps', version: 'v1', resource: 'deployments' },
        name: d.metadata.name,
        namespace: d.metadata.namespace,
        operation: 'UPDATE',
        userInfo: { username: `system:serviceaccount:${d.metadata.namespace}:${sa}`, uid: sa, groups: ['system:serviceaccounts', 'system:authenticated'] },
        object,
        oldObject: { apiVersion: 'apps/v1', kind: 'Deployment', ...d },
        dryRun: false,
        options: { apiVersion: 'meta.k8s.io/v1', kind: 'UpdateOptions' },
      },
    };
    const t0 = performance.now();
    const answer = await handle('validate', review, '10s');
    samples.push(performance.now() - t0);
    const body = answer.body as { response?: { allowed?: boolean } };
    if (answer.status !== 200 || body.response === undefined) throw new Error(`decision failed: ${JSON.stringify(answer.body)}`);
    verdicts[body.response.allowed ? 'allowed' : 'denied']++;
  }
  return { ...percentilesUs(samples), ...verdicts };
}

const CAS_ROUNDS = 2_000;

/**
 * The shared ledger's round trip: one transaction that changes an agent's state, that is
 * a GET of its ConfigMap and a compare-and-swap PUT (a POST the first time), over
 * loopback HTTP to the fake API server, one at a time, 50 agents in turn.
 */
async function measureCompareAndSwap(url: string): Promise<Percentiles> {
  const { KubeLedger } = await import('../src/cluster/kube-ledger.ts');
  const { addProvenance } = await import('../src/core/ledger-state.ts');
  const { systemClock } = await import('../src/clock.ts');
  const ledger = new KubeLedger({ connection: { baseUrl: url }, namespace: 'replica-guard', clock: systemClock });
  const samples: number[] = [];
  for (let i = 0; i < CAS_ROUNDS; i++) {
    const agent = `system:serviceaccount:team-1:agent-${i % 50}`;
    const t0 = performance.now();
    await ledger.transact(agent, (state) => ({ result: undefined, next: addProvenance(state, `uid-${i}`, new Date(), ledger.limits) }));
    // The first round of each agent creates its ConfigMap: not a compare-and-swap.
    if (i >= 50) samples.push(performance.now() - t0);
  }
  return percentilesUs(samples);
}

// ---- the orchestrator ------------------------------------------------------------------------

async function child(args: string[], execArgv: string[]): Promise<{ proc: ChildProcess; first: unknown }> {
  const proc = fork(new URL(import.meta.url).pathname, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [first] = (await Promise.race([once(proc, 'message'), once(proc, 'exit').then(() => [undefined])])) as [unknown];
  if (first === undefined) throw new Error(`child ${args.join(' ')} exited early`);
  return { proc, first };
}

async function run(scenarios: Scenario[], nodeFlags: string[]): Promise<void> {
  const results: Figures[] = [];
  for (const s of scenarios) {
    const loadStarted = performance.now();
    const server = await child(['serve', String(s.workloads), String(s.pods)], ['--max-old-space-size=16000']);
    const { url } = server.first as { url: string };
    console.error(`loaded ${s.workloads} workloads + ${s.pods} pods into the fake in ${((performance.now() - loadStarted) / 1000).toFixed(1)} s`);
    try {
      const measured = await child(['measure', url, String(s.workloads), String(s.pods)], ['--expose-gc', ...nodeFlags]);
      results.push(measured.first as Figures);
      await once(measured.proc, 'exit');
    } finally {
      server.proc.send('stop');
      await once(server.proc, 'exit');
    }
  }
  const f = (n: number, d = 0) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  console.log('| workloads | pods | objects listed | time to first sync | view RSS (after gc) | view heap | lookups p50 | lookups p99 | lookups max | family size (mean) |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(
      `| ${f(r.scenario.workloads)} | ${f(r.scenario.pods)} | ${f(r.objects)} | ${f(r.syncMs / 1000, 1)} s | ${f(r.rssMiB)} MiB | ${f(r.heapMiB)} MiB | ${f(r.lookup.p50Us, 1)} µs | ${f(r.lookup.p99Us, 1)} µs | ${f(r.lookup.maxUs)} µs | ${f(r.lookup.meanMembers, 1)} |`,
    );
  }
  console.log('');
  console.log(`Decisions over the warm view (${f(DECISIONS)} updates, in-memory ledger) and shared-ledger rounds (${f(CAS_ROUNDS - 50)} compare-and-swap transactions against the fake over loopback HTTP):`);
  console.log('');
  console.log('| workloads | pods | decision p50 | decision p99 | decision max | allowed / denied | ledger round p50 | ledger round p99 | ledger round max |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const d = r.decision;
    console.log(
      `| ${f(r.scenario.workloads)} | ${f(r.scenario.pods)} | ${f(d.p50Us, 1)} µs | ${f(d.p99Us, 1)} µs | ${f(d.maxUs)} µs | ${f(d.allowed)} / ${f(d.denied)} | ${f(r.cas.p50Us)} µs | ${f(r.cas.p99Us)} µs | ${f(r.cas.maxUs)} µs |`,
    );
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'serve') {
  await serve({ workloads: Number(rest[0]), pods: Number(rest[1]) });
} else if (mode === 'measure') {
  await measure(rest[0] ?? '', { workloads: Number(rest[1]), pods: Number(rest[2]) });
} else {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, scenario: { type: 'string', multiple: true }, 'node-flag': { type: 'string', multiple: true } },
    strict: true,
  });
  const scenarios = values.scenario?.map((s) => {
    const [w, p] = s.split(':').map(Number);
    return { workloads: w ?? 0, pods: p ?? 0 };
  }) ?? (values.quick ? [{ workloads: 2_000, pods: 10_000 }] : [{ workloads: 10_000, pods: 100_000 }, { workloads: 50_000, pods: 100_000 }]);
  await run(scenarios, values['node-flag'] ?? []);
}
