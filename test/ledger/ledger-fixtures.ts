import { Registry } from 'prom-client';
import { systemClock } from '../../src/clock.ts';
import { KubeLedger, type KubeLedgerOptions, ledgerConfigMapName } from '../../src/cluster/kube-ledger.ts';
import { createLedgerMetrics, type LedgerMetrics } from '../../src/cluster/ledger.ts';
import { type AgentLedgerState, parseState, serializeState } from '../../src/core/ledger-state.ts';
import type { FakeApiServer, KubeObject } from '../fake-apiserver/fake-apiserver.ts';

export const NS = 'replica-guard';
export const AGENT = 'system:serviceaccount:agents:agent-1';
export const CM = ledgerConfigMapName(AGENT);

/** A seeded source of numbers in [0, 1) (mulberry32), so that jitter and bursts replay. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A "guard process": its own ledger, HTTP connections and metrics, against the fake. */
export function guardLedger(
  fake: FakeApiServer,
  options: Partial<KubeLedgerOptions> = {},
): { ledger: KubeLedger; metrics: LedgerMetrics; registry: Registry } {
  const registry = new Registry();
  const metrics = createLedgerMetrics(registry);
  const ledger = new KubeLedger({
    connection: { baseUrl: fake.url },
    namespace: NS,
    clock: systemClock,
    metrics,
    ...options,
  });
  return { ledger, metrics, registry };
}

/** The ledger ConfigMap of an agent as the fake stores it. */
export function storedConfigMap(fake: FakeApiServer, agent = AGENT): KubeObject & { data: Record<string, string> } {
  const cm = fake.get('configmaps', NS, ledgerConfigMapName(agent));
  if (!cm) throw new Error(`no ledger ConfigMap for ${agent}`);
  return cm as KubeObject & { data: Record<string, string> };
}

/** The agent's state as stored in the fake. */
export function storedState(fake: FakeApiServer, agent = AGENT): AgentLedgerState {
  return parseState(storedConfigMap(fake, agent).data.state).state;
}

/** Another writer replaces the agent's state directly, as a second guard's PUT would. */
export function writeBehindTheBack(fake: FakeApiServer, state: AgentLedgerState, agent = AGENT): void {
  const existing = fake.get('configmaps', NS, ledgerConfigMapName(agent));
  const base: KubeObject = existing ?? { metadata: { name: ledgerConfigMapName(agent), namespace: NS } };
  fake.put('configmaps', { ...base, data: { agent, state: serializeState(state) } });
}

/** Requests the fake saw, by method, for the agent's ConfigMap (and the create on the collection). */
export function ledgerRequests(fake: FakeApiServer): string[] {
  const collection = `/api/v1/namespaces/${NS}/configmaps`;
  return fake.requests
    .filter((r) => r.endsWith(collection) || r.includes(`${collection}/`))
    .map((r) => r.split(' ')[0] ?? '');
}

/** The sum and count of a histogram without labels, or with the given labels. */
type Labels = Partial<Record<string, string | number>>;

export async function histogramTotals(
  metric: { get(): Promise<{ values: { metricName?: string; labels: Labels; value: number }[] }> },
  labels: Record<string, string> = {},
): Promise<{ sum: number; count: number }> {
  const { values } = await metric.get();
  const match = (v: { labels: Labels }) => Object.entries(labels).every(([k, val]) => v.labels[k] === val);
  const pick = (suffix: string) =>
    values.filter((v) => v.metricName?.endsWith(suffix) && match(v)).reduce((acc, v) => acc + v.value, 0);
  return { sum: pick('_sum'), count: pick('_count') };
}

/** The value of a counter (summed over label sets matching `labels`). */
export async function counterValue(
  metric: { get(): Promise<{ values: { labels: Labels; value: number }[] }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((acc, v) => acc + v.value, 0);
}
