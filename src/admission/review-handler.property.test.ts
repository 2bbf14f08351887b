import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../clock.ts';
import { InMemoryLedger } from '../cluster/in-memory-ledger.ts';
import { InMemoryClusterView } from '../cluster/in-memory-view.ts';
import type { Policy } from '../core/types.ts';
import { StaticLoadSource } from '../load/static-load-source.ts';
import { compileAgentMatcher } from '../policy/agent-matcher.ts';
import { createMetrics } from '../telemetry/metrics.ts';
import { type NodeInfo, placeholderNodes } from './node-eligibility.ts';
import { createReviewHandler, type ReviewHandler } from './review-handler.ts';

/**
 * Property tests against an oracle written from DESIGN.md's counting rules, independent
 * of the guard's own counting and decision code: if both agree on thousands of generated
 * reviews, a mistake would have to be made twice, the same way.
 */

type Json = Record<string, unknown>;

const NODES: NodeInfo[] = [...placeholderNodes(3), { name: 'gpu-1', labels: { 'kubernetes.io/os': 'linux', gpu: 'true' } }];
const AGENT = 'system:serviceaccount:agents:agent-1';

interface Generated {
  readonly resource: { group: string; version: string; resource: string };
  readonly subResource?: string;
  readonly kind: { group: string; version: string; kind: string };
  readonly object: Json;
}

/** The steady count of DESIGN.md's vocabulary table, computed from the raw object. */
function oracleSteady(g: Generated): number {
  const spec = (g.object.spec ?? {}) as Json;
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  const jobCount = (s: Json): number => {
    if (s.suspend === true) return 0;
    const p = num(s.parallelism) ?? 1;
    const c = num(s.completions);
    return c === undefined ? p : Math.min(p, c);
  };
  if (g.subResource === 'scale') return num(spec.replicas) ?? 0;
  switch (g.kind.kind) {
    case 'Job':
      return jobCount(spec);
    case 'CronJob':
      return spec.suspend === true ? 0 : jobCount(((spec.jobTemplate as Json).spec ?? {}) as Json);
    case 'DaemonSet': {
      const selector = ((((spec.template as Json).spec as Json).nodeSelector ?? {}) as Record<string, string>) ?? {};
      return NODES.filter((n) => Object.entries(selector).every(([k, v]) => n.labels[k] === v)).length;
    }
    case 'Pod':
      return 1;
    case 'HorizontalPodAutoscaler':
      return num(spec.maxReplicas) ?? 0;
    default:
      return num(spec.replicas) ?? 1;
  }
}

const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const small = fc.integer({ min: 0, max: 30 });
const podSpec = fc.record({ serviceAccountName: fc.constant('agent-1'), containers: fc.constant([{ name: 'a', image: 'registry.example/agent:1.0' }]) });
const template = podSpec.map((spec) => ({ metadata: { labels: { app: 'x' } }, spec }));
const clean = (o: Json): Json => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const meta = { name: 'w', namespace: 'agents', uid: 'uid-w' };

const apps = (resource: string, kind: string) => ({
  resource: { group: 'apps', version: 'v1', resource },
  kind: { group: 'apps', version: 'v1', kind },
});

/** Objects of one kind; old and new of an UPDATE come from the same generator. */
function kindArbitrary(): fc.Arbitrary<fc.Arbitrary<Generated>> {
  const replicated = (resource: string, kind: string, group = 'apps') =>
    fc.record({ replicas: maybe(small), template }).map((spec) => ({
      resource: { group, version: 'v1', resource },
      kind: { group, version: 'v1', kind },
      object: { metadata: meta, spec: clean(spec) },
    }));
  const jobSpec = fc.record({ parallelism: maybe(small), completions: maybe(small), suspend: maybe(fc.boolean()), template });
  const scale = (resource: string, group = 'apps') =>
    maybe(small).map((replicas) => ({
      resource: { group, version: 'v1', resource },
      subResource: 'scale',
      kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
      object: { metadata: meta, spec: replicas === undefined ? {} : { replicas } },
    }));
  return fc.constantFrom<fc.Arbitrary<Generated>>(
    fc
      .record({
        replicas: maybe(small),
        template,
        strategy: maybe(fc.constantFrom({ type: 'Recreate' }, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 3 } })),
      })
      .map((spec) => ({ ...apps('deployments', 'Deployment'), object: { metadata: meta, spec: clean(spec) } })),
    replicated('replicasets', 'ReplicaSet'),
    replicated('statefulsets', 'StatefulSet'),
    replicated('replicationcontrollers', 'ReplicationController', ''),
    jobSpec.map((spec) => ({
      resource: { group: 'batch', version: 'v1', resource: 'jobs' },
      kind: { group: 'batch', version: 'v1', kind: 'Job' },
      object: { metadata: meta, spec: clean(spec) },
    })),
    fc
      .record({ suspend: maybe(fc.boolean()), concurrencyPolicy: maybe(fc.constantFrom('Allow', 'Forbid', 'Replace')), job: jobSpec })
      .map(({ job, ...rest }) => ({
        resource: { group: 'batch', version: 'v1', resource: 'cronjobs' },
        kind: { group: 'batch', version: 'v1', kind: 'CronJob' },
        object: { metadata: meta, spec: clean({ ...rest, jobTemplate: { spec: clean(job) } }) },
      })),
    fc.constantFrom<Record<string, string> | undefined>(undefined, {}, { gpu: 'true' }, { 'kubernetes.io/os': 'linux' }).map((nodeSelector) => ({
      ...apps('daemonsets', 'DaemonSet'),
      object: {
        metadata: meta,
        spec: { template: { spec: clean({ serviceAccountName: 'agent-1', containers: [], nodeSelector }) } },
      },
    })),
    podSpec.map((spec) => ({
      resource: { group: '', version: 'v1', resource: 'pods' },
      kind: { group: '', version: 'v1', kind: 'Pod' },
      object: { metadata: meta, spec },
    })),
    fc.record({ minReplicas: maybe(fc.integer({ min: 1, max: 5 })), maxReplicas: fc.integer({ min: 1, max: 30 }) }).map((spec) => ({
      resource: { group: 'autoscaling', version: 'v2', resource: 'horizontalpodautoscalers' },
      kind: { group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler' },
      object: {
        metadata: meta,
        spec: clean({ ...spec, scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'w' } }),
      },
    })),
    scale('deployments'),
    scale('replicasets'),
    scale('statefulsets'),
    scale('replicationcontrollers', ''),
  );
}

interface Case {
  readonly operation: 'CREATE' | 'UPDATE';
  readonly before: Generated;
  readonly after: Generated;
  readonly cap: number;
}

const cases: fc.Arbitrary<Case> = kindArbitrary().chain((arb) =>
  fc.record({ operation: fc.constantFrom<'CREATE' | 'UPDATE'>('CREATE', 'UPDATE'), before: arb, after: arb, cap: fc.integer({ min: 0, max: 20 }) }),
).filter((c) => !(c.after.subResource === 'scale' && c.operation === 'CREATE'));

function review(c: Case, uid: string): Json {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: clean({
      uid,
      kind: c.after.kind,
      resource: c.after.resource,
      subResource: c.after.subResource,
      name: 'w',
      namespace: 'agents',
      operation: c.operation,
      userInfo: { username: AGENT, groups: ['system:serviceaccounts', 'system:authenticated'] },
      object: c.after.object,
      oldObject: c.operation === 'CREATE' ? null : c.before.object,
      dryRun: false,
    }),
  };
}

function handlerFor(mode: Policy['mode'], cap: number): ReviewHandler {
  const policies: Policy[] = [
    {
      name: 'p',
      mode,
      agents: { serviceAccounts: ['agents:*'], users: [], groups: [] },
      need: { onUnavailable: 'caps' },
      limits: { perWorkload: cap },
      source: { file: 'inline', document: 1 },
    },
  ];
  const active = { policies, matcher: compileAgentMatcher(policies) };
  return createReviewHandler({
    policies: () => active,
    view: new InMemoryClusterView(NODES),
    loadSource: new StaticLoadSource(),
    ledger: new InMemoryLedger({ windowMs: 3_600_000, maxEpisodes: 1000 }),
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(new Registry()),
    scaleResources: [],
    deadlineMarginMs: 1000,
    defaultTimeoutMs: 10_000,
    maxStalenessMs: 60_000,
  });
}

interface Answer {
  status: number;
  body: { response?: { allowed: boolean; patch?: string; patchType?: string } };
}

function applyPatch(object: Json, patchBase64: string): Json {
  const ops = JSON.parse(Buffer.from(patchBase64, 'base64').toString('utf8')) as { op: string; path: string; value: unknown }[];
  const out = structuredClone(object);
  for (const op of ops) {
    const parts = op.path.split('/').slice(1);
    let cur: Json = out;
    for (const p of parts.slice(0, -1)) {
      cur[p] ??= {};
      cur = cur[p] as Json;
    }
    const last = parts.at(-1);
    if (last !== undefined) cur[last] = op.value;
  }
  return out;
}

describe('decisions agree with an independent oracle', () => {
  it('enforce with cap C denies exactly the reviews whose steady count grows past max(C, old)', async () => {
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const handle = handlerFor('enforce', c.cap);
        const answer = (await handle('validate', review(c, 'u1'), '10s')) as Answer;
        expect(answer.status).toBe(200);
        const from = c.operation === 'CREATE' ? 0 : oracleSteady(c.before);
        const to = oracleSteady(c.after);
        expect(answer.body.response?.allowed).toBe(!(to > Math.max(c.cap, from)));
      }),
      { numRuns: 600 },
    );
  });

  it('clamp never patches a count above C, and the patched object passes validation', async () => {
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const handle = handlerFor('clamp', c.cap);
        const answer = (await handle('mutate', review(c, 'u1'), '10s')) as Answer;
        expect(answer.status).toBe(200);
        expect(answer.body.response?.allowed).toBe(true);
        const patch = answer.body.response?.patch;
        if (patch === undefined) return;
        const patched = applyPatch(c.after.object, patch);
        const clampedCase = { ...c, after: { ...c.after, object: patched } };
        expect(oracleSteady(clampedCase.after)).toBeLessThanOrEqual(c.cap);
        const validated = (await handle('validate', review(clampedCase, 'u2'), '10s')) as Answer;
        expect(validated.body.response?.allowed).toBe(true);
      }),
      { numRuns: 400 },
    );
  });
});

describe('nothing generated crashes the parser', () => {
  const handle = handlerFor('enforce', 3);
  const fixture = JSON.parse(
    readFileSync(new URL('../../test/fixtures/admission/deployment-patch-merge-agent-10.json', import.meta.url), 'utf8'),
  ) as Json;

  it('answers arbitrary JSON with a 400 or a verdict, never a throw', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (body) => {
        const answer = (await handle('validate', body, undefined)) as Answer;
        expect([200, 400]).toContain(answer.status);
      }),
      { numRuns: 500 },
    );
  });

  it('answers a real review with any field replaced by any value with a 400 or a verdict', async () => {
    const paths: string[][] = [];
    const walk = (o: unknown, path: string[]) => {
      if (typeof o !== 'object' || o === null || path.length > 7) return;
      for (const [k, v] of Object.entries(o)) {
        paths.push([...path, k]);
        walk(v, [...path, k]);
      }
    };
    walk(fixture, []);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), fc.jsonValue(), async (path, value) => {
        const body = structuredClone(fixture);
        let cur: Json = body;
        for (const p of path.slice(0, -1)) cur = cur[p] as Json;
        const last = path.at(-1);
        if (last !== undefined) cur[last] = value;
        const answer = (await handle('validate', body, '10s')) as Answer;
        expect([200, 400]).toContain(answer.status);
      }),
      { numRuns: 1000 },
    );
  });
});
