/**
 * Which workloads an agent created or scaled up, by UID: provenance, one way into its
 * family (an annotation would not do: Scale requests carry no metadata, server-side apply
 * can drop annotations, and agents could strip them).
 */
export interface Provenance {
  of(agent: string): Iterable<string>;
  add(agent: string, uid: string): void;
}

/** Provenance kept in process memory, for the embedded default. */
export class InMemoryProvenance implements Provenance {
  readonly #byAgent = new Map<string, Set<string>>();

  of(agent: string): Iterable<string> {
    return this.#byAgent.get(agent) ?? [];
  }

  add(agent: string, uid: string): void {
    let set = this.#byAgent.get(agent);
    if (!set) this.#byAgent.set(agent, (set = new Set()));
    set.add(uid);
  }
}
