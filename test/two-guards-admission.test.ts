import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NodeInfo } from '../src/admission/node-eligibility.ts';
import { createReviewHandler, type ReviewHandler } from '../src/admission/review-handler.ts';
import { systemClock } from '../src/clock.ts';
import type { ClusterView } from '../src/cluster/cluster-view.ts';
import { FamilyAggregates, type FamilyQuery } from '../src/cluster/family-aggregates.ts';
import { AllowanceLeases } from '../src/cluster/allowance-leases.ts';
import { KubeLedger, ledgerConfigMapName } from '../src/cluster/kube-ledger.ts';
import { WorkloadIndex } from '../src/cluster/workload-index.ts';
import { podFingerprints } from '../src/core/fingerprint.ts';
import { parseState, rateUsed } from '../src/core/ledger-state.ts';
import type { WorkloadRef, WorkloadSnapshot } from '../src/core/types.ts';
import { StaticLoadSource } from '../src/load/static-load-source.ts';
import { compileAgentMatcher } from '../src/policy/agent-matcher.ts';
import { parsePolicyText } from '../src/policy/policy-loader.ts';
import { createMetrics } from '../src/telemetry/metrics.ts';
import { FakeApiServer } from './fake-apiserver/fake-apiserver.ts';
import { AGENT, review } from './helpers/fixtures.ts';

// Two guard processes (two handlers, each with its own ledger client and view) share one
// ledger through the fake API server. A burst of growth from one agent arrives at both
// at once: exactly the rate allowance and exactly the family room are admitted, never
// more, because each decision is made inside a compare-and-swap transaction. With
// allowance leases, each spends only its own share: a burst never takes more than the
// policy allows, and what the shares held back is admitted once they are given back.

/**
 * A cluster view as a synced list/watch view would be between two watch events: the
 * cluster as it was, not yet showing the writes being admitted. Growth admitted in the
 * meantime lives in the ledger's reservations, which is what the test exercises.
 */
class FrozenView implements ClusterView {
  readonly #index = new WorkloadIndex();
  readonly #families = new FamilyAggregates(this.#index);
  constructor(snapshots: readonly WorkloadSnapshot[]) {
    for (const s of snapshots) this.#index.set(s);
  }
  workload(group: string, kind: string, namespace: string, name: string) {
    return this.#index.get(group, kind, namespace, name);
  }
  workloadByUid(uid: string) {
    return this.#index.byUid(uid);
  }
  runningAs(sa: string) {
    return this.#index.runningAs(sa);
  }
  withFingerprint(key: string) {
    return this.#index.withFingerprint(key);
  }
  scalerOf(ref: WorkloadRef) {
    return this.#index.scalerOf(ref);
  }
  family(query: FamilyQuery) {
    return this.#families.family(query);
  }
  isGone(): boolean {
    return false;
  }
  nodes(): readonly NodeInfo[] {
    return [];
  }
  staleness(): number {
    return 0;
  }
}

let fake: FakeApiServer;
beforeEach(async () => {
  fake = await FakeApiServer.start();
  fake.setLatency(3);
});
afterEach(async () => {
  await fake.close();
});

function guardProcess(policyYaml: string, snapshots: readonly WorkloadSnapshot[], leases?: (ledger: KubeLedger) => AllowanceLeases): ReviewHandler {
  const { policies, problems } = parsePolicyText(policyYaml, 'inline.yaml');
  expect(problems.filter((p) => p.severity === 'error')).toEqual([]);
  const active = { policies, matcher: compileAgentMatcher(policies) };
  const ledger = new KubeLedger({ connection: { baseUrl: fake.url }, namespace: 'replica-guard', clock: systemClock });
  return createReviewHandler({
    policies: () => active,
    view: new FrozenView(snapshots),
    loadSource: new StaticLoadSource(),
    ledger,
    leases: leases?.(ledger),
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(new Registry()),
    scaleResources: [],
    deadlineMarginMs: 1000,
    defaultTimeoutMs: 10_000,
    maxStalenessMs: 60_000,
  });
}

/** A guard process deciding from allowance leases, as a cluster-mode guard does; its leases are kept for the test to close. */
function leasedGuard(policyYaml: string, snapshots: readonly WorkloadSnapshot[], opened: AllowanceLeases[], name: string): ReviewHandler {
  return guardProcess(policyYaml, snapshots, (ledger) => {
    const leases = new AllowanceLeases({ ledger, holder: name, clock: systemClock, logger: pino({ level: 'silent' }) });
    opened.push(leases);
    return leases;
  });
}

/** The agent's own Deployment at 4 instances: the family the bursts grow. */
const AGENT_WEB: WorkloadSnapshot = {
  ref: { group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'agent-web', uid: 'uid-web' },
  count: { steady: 4, extra: { type: 'none' } },
  serviceAccounts: ['agent-1'],
  fingerprints: podFingerprints('agent-1', [{ image: 'registry.example/agent:1.0' }]),
};

/** The agent creating pod `i`, a pod of its own image: one more instance in its family. */
const createPod = (i: number) =>
  review('pod-create-agent', {
    set: [
      ['name', `pod-${i}`],
      ['object.metadata.name', `pod-${i}`],
      ['object.metadata.uid', `pod-uid-${i}`],
    ],
  });

const policyYaml = (limits: string, extra = '') => `apiVersion: replica-guard.io/v1alpha1
kind: ReplicaPolicy
metadata: { name: burst }
spec:
  mode: enforce
  agents: { serviceAccounts: ["agents:*"] }
  need: { onUnavailable: caps }
  limits: ${limits}
${extra}`;

interface Answer {
  body: { response?: { allowed: boolean } };
}

async function fireBurst(guards: readonly ReviewHandler[], bodies: readonly unknown[]): Promise<number> {
  const answers = await Promise.all(
    bodies.map(async (body, i) => {
      await new Promise((r) => setTimeout(r, (i * 7) % 23));
      const guard = guards[i % guards.length] as ReviewHandler;
      return (await guard('validate', body, '10s')) as Answer;
    }),
  );
  return answers.filter((a) => a.body.response?.allowed === true).length;
}

describe('two guards, one shared ledger', () => {
  it('admit exactly the rate allowance from a burst of scale-ups, never more', async () => {
    const yaml = policyYaml('{ rate: { instances: 4, per: 5m } }');
    const guards = [guardProcess(yaml, []), guardProcess(yaml, [])];
    // 20 workloads, each scaled from 1 to 2: every request adds one instance.
    const bodies = Array.from({ length: 20 }, (_, i) =>
      review('deployment-scale-agent-10', {
        oldReplicas: 1,
        replicas: 2,
        set: [
          ['name', `web-${i}`],
          ['object.metadata.name', `web-${i}`],
          ['object.metadata.uid', `uid-${i}`],
        ],
      }),
    );
    expect(await fireBurst(guards, bodies)).toBe(4);
    // The allowance stays spent: one more request is denied by either guard.
    const late = (await (guards[1] as ReviewHandler)('validate', review('deployment-scale-agent-10', { oldReplicas: 1, replicas: 2 }), '10s')) as Answer;
    expect(late.body.response?.allowed).toBe(false);
  });

  it('admit exactly the room left in the family, counting growth the view does not show yet', async () => {
    // The family already runs 4 instances (one Deployment); the cap is 10 potential instances.
    const yaml = policyYaml('{ perFamily: 10 }', '  clones: { allowed: true }');
    const guards = [guardProcess(yaml, [AGENT_WEB]), guardProcess(yaml, [AGENT_WEB])];
    expect(await fireBurst(guards, Array.from({ length: 16 }, (_, i) => createPod(i)))).toBe(6);
  });

  describe('deciding from allowance leases', () => {
    const opened: AllowanceLeases[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((l) => l.close()));
    });
    const scaleUp = (i: number) =>
      review('deployment-scale-agent-10', {
        oldReplicas: 1,
        replicas: 2,
        set: [
          ['name', `web-${i}`],
          ['object.metadata.name', `web-${i}`],
          ['object.metadata.uid', `uid-${i}`],
        ],
      });
    const stored = () => {
      const data = fake.get('configmaps', 'replica-guard', ledgerConfigMapName(AGENT))?.data as Record<string, string> | undefined;
      return parseState(data?.state).state;
    };

    it('never admit more than the rate allowance from bursts through both, and lose none of it once the leases are given back', async () => {
      const yaml = policyYaml('{ rate: { instances: 12, per: 5m } }');
      const guards = [leasedGuard(yaml, [], opened, 'guard-a'), leasedGuard(yaml, [], opened, 'guard-b')];
      let admitted = 0;
      for (let burst = 0; burst < 3; burst++) {
        admitted += await fireBurst(guards, Array.from({ length: 10 }, (_, i) => scaleUp(burst * 10 + i)));
        expect(admitted).toBeLessThanOrEqual(12);
        // What is stored charges at least what was admitted (reservations and the shares left).
        expect(rateUsed(stored(), 5 * 60_000, new Date())).toBeGreaterThanOrEqual(admitted);
      }
      const decided = opened.map((l) => l.agents);
      expect(decided.some((n) => n > 0)).toBe(true);
      // Given back: one guard alone now admits exactly the rest, and not one more.
      await Promise.all(opened.map((l) => l.close()));
      expect(stored().leases).toBeUndefined();
      for (let i = 0; admitted < 12 && i < 12; i++) {
        if ((await fireBurst([guards[0] as ReviewHandler], [scaleUp(100 + i)])) === 1) admitted++;
      }
      expect(admitted).toBe(12);
      expect(await fireBurst(guards, [scaleUp(200), scaleUp(201)])).toBe(0);
      expect(rateUsed(stored(), 5 * 60_000, new Date())).toBe(12);
    });

    it('never admit more than the room left in the family from a burst through both', async () => {
      const yaml = policyYaml('{ perFamily: 20 }', '  clones: { allowed: true }');
      const guards = [leasedGuard(yaml, [AGENT_WEB], opened, 'guard-a'), leasedGuard(yaml, [AGENT_WEB], opened, 'guard-b')];
      const admitted = (await fireBurst(guards, Array.from({ length: 12 }, (_, i) => createPod(i)))) + (await fireBurst(guards, Array.from({ length: 12 }, (_, i) => createPod(20 + i))));
      expect(admitted).toBeLessThanOrEqual(16);
      expect(admitted).toBeGreaterThan(0);
    });
  });
});
