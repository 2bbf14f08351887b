import type { NodeInfo } from '../admission/node-eligibility.ts';
import { potentialAt, potentialOf } from '../core/instances.ts';
import type { AgentIdentity, FamilyFact, WorkloadRef } from '../core/types.ts';
import type { ObservingClusterView, WorkloadSnapshot } from './cluster-view.ts';

interface Entry {
  readonly snapshot: WorkloadSnapshot;
  /** Agents that created or changed it: provenance, by user name. */
  readonly writers: ReadonlySet<string>;
}

const keyOf = (group: string, kind: string, namespace: string, name: string) => `${group}/${kind}/${namespace}/${name}`;

/**
 * The cluster as the guard has seen it through admitted agent writes, for running
 * without a cluster. Nodes come from configuration. A family is every workload the
 * agent wrote plus every workload whose pods run as the agent's service account name.
 */
export class InMemoryClusterView implements ObservingClusterView {
  readonly #nodes: readonly NodeInfo[];
  readonly #entries = new Map<string, Entry>();

  constructor(nodes: readonly NodeInfo[]) {
    this.#nodes = nodes;
  }

  workload(group: string, kind: string, namespace: string, name: string): WorkloadSnapshot | undefined {
    return this.#entries.get(keyOf(group, kind, namespace, name))?.snapshot;
  }

  nodes(): readonly NodeInfo[] {
    return this.#nodes;
  }

  observe(agent: AgentIdentity, ref: WorkloadRef, snapshot: WorkloadSnapshot | null): void {
    const key = keyOf(ref.group, ref.kind, ref.namespace, ref.name);
    if (snapshot === null) {
      this.#entries.delete(key);
      return;
    }
    const writers = new Set(this.#entries.get(key)?.writers ?? []);
    writers.add(agent.username);
    this.#entries.set(key, { snapshot, writers });
  }

  family(agent: AgentIdentity, excluding: WorkloadRef): FamilyFact {
    const excluded = keyOf(excluding.group, excluding.kind, excluding.namespace, excluding.name);
    const members = new Map<string, WorkloadSnapshot>();
    for (const [key, entry] of this.#entries) {
      if (key === excluded) continue;
      const ownSa = agent.serviceAccount && entry.snapshot.serviceAccounts.includes(agent.serviceAccount.name);
      if (entry.writers.has(agent.username) || ownSa) members.set(key, entry.snapshot);
    }
    let workloads = 0;
    let potential = 0;
    for (const [, s] of members) {
      if (s.scaleTarget) continue;
      workloads++;
      potential += potentialOf(s.count);
    }
    // An HPA raises its target up to maxReplicas: count the target at that ceiling, once.
    for (const [, s] of members) {
      if (!s.scaleTarget) continue;
      const target = members.get(keyOf(s.scaleTarget.group, s.scaleTarget.kind, s.ref.namespace, s.scaleTarget.name));
      if (!target) continue;
      const raised = potentialAt(Math.max(target.count.steady, s.count.steady), target.count.extra);
      potential += Math.max(0, raised - potentialOf(target.count));
    }
    return { workloads, potential };
  }
}
