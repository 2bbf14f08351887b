import { needByHpaRule } from '../core/need-rule.ts';
import type { AgentIdentity, NeedFact, WorkloadRef } from '../core/types.ts';
import { LoadFailureReporter, type LoadFailureReporterOptions } from './load-failures.ts';
import type { LoadSource, NeedQuery } from './load-source.ts';

/**
 * A need query that may say whose request it is. The HPA source needs the agent to ask
 * whether its family can write the HPA; the handler passes it (NeedQuery gains `agent`).
 */
export interface AgentNeedQuery extends NeedQuery {
  readonly agent?: AgentIdentity | undefined;
}

/** The HPA that scales a workload, as far as the need is concerned. */
export interface HpaFact {
  readonly namespace: string;
  readonly name: string;
  /** `status.desiredReplicas`; undefined before the HPA controller first reconciled it. */
  readonly desiredReplicas: number | undefined;
  /**
   * Whether the agent's family can write this HPA: created or changed by a member
   * (provenance in the ledger), or allowed by RBAC (a SubjectAccessReview). Undefined when
   * that is not known, which is treated as "can": trust needs a no.
   */
  readonly familyCanWrite: boolean | undefined;
}

/**
 * Where the hpa source learns the HPA targeting a workload. In cluster mode
 * `ViewHpaReader` (cluster/view-hpa-reader.ts) implements it from the view's HPA cache,
 * with the ledger's provenance and SubjectAccessReviews for `familyCanWrite`. Null when no
 * HPA targets the workload; undefined when the reader does not know.
 */
export interface HpaReader {
  hpaFor(ref: WorkloadRef, agent: AgentIdentity | undefined, signal: AbortSignal): Promise<HpaFact | null | undefined>;
}

export interface HpaLoadSourceOptions extends LoadFailureReporterOptions {
  readonly hpas: HpaReader;
}

/**
 * The need from the HPA that scales the workload: its `status.desiredReplicas`, which the
 * HPA controller computed from live metrics by the same rule, bounded by `need.min` and
 * `need.max`.
 *
 * Trusted only when the agent's family cannot write that HPA. The desired count is
 * clamped by the HPA's own `minReplicas`: an agent that can raise `minReplicas` to 50 makes
 * the HPA desire 50 and would thereby raise its own need. So an HPA the family can write
 * (or might: unknown counts as can) is `unavailable` with that reason, and the policy's
 * `onUnavailable` decides. Never rejects.
 */
export class HpaLoadSource implements LoadSource {
  readonly #hpas: HpaReader;
  readonly #reporter: LoadFailureReporter;

  constructor(options: HpaLoadSourceOptions) {
    this.#hpas = options.hpas;
    this.#reporter = new LoadFailureReporter(options);
  }

  async need(query: AgentNeedQuery, signal: AbortSignal): Promise<NeedFact> {
    const { ref, policy } = query;
    const target = `${ref.kind} ${ref.namespace}/${ref.name}`;
    let hpa: HpaFact | null | undefined;
    try {
      hpa = await this.#hpas.hpaFor(ref, query.agent, signal);
    } catch (error) {
      return this.#fail('unreachable', `the HPA of ${target} could not be read: ${String(error)}`);
    }
    if (hpa === undefined) return this.#fail('unknown_workload', `the guard does not know whether an HPA targets ${target}`);
    if (hpa === null) return this.#fail('no_target', `no HorizontalPodAutoscaler targets ${target}`);
    const name = `HorizontalPodAutoscaler ${hpa.namespace}/${hpa.name}`;
    if (hpa.familyCanWrite !== false) {
      const why =
        hpa.familyCanWrite === true
          ? `the agent's family can write ${name}`
          : `it is not known whether the agent's family can write ${name}`;
      return this.#fail(
        'untrusted',
        `${why}; its desired replicas follow the minReplicas the agent sets, so they are not the need`,
      );
    }
    if (hpa.desiredReplicas === undefined || !Number.isInteger(hpa.desiredReplicas) || hpa.desiredReplicas < 0) {
      return this.#fail('bad_response', `${name} has no desired replicas yet`);
    }
    this.#reporter.answered('hpa');
    // The HPA already applied the rule: its desired count is the count at ratio 1, which the
    // rule keeps, raised to need.min and capped at need.max.
    const value = needByHpaRule({ current: hpa.desiredReplicas, ratio: 1, min: policy.need.min, max: policy.need.max });
    return { kind: 'measured', value, source: 'hpa' };
  }

  #fail(reason: 'unreachable' | 'unknown_workload' | 'no_target' | 'untrusted' | 'bad_response', detail: string): NeedFact {
    this.#reporter.failed('hpa', { reason, detail });
    return { kind: 'unavailable', reason: detail };
  }
}

function keyOf(ref: Pick<WorkloadRef, 'group' | 'kind' | 'namespace' | 'name'>): string {
  return `${ref.group}/${ref.kind}/${ref.namespace}/${ref.name}`;
}

/** An HPA as {@link InMemoryHpaReader} is told it; `familyCanWrite` may depend on the agent, as RBAC does. */
export type InMemoryHpa = Omit<HpaFact, 'familyCanWrite'> & {
  readonly familyCanWrite: boolean | undefined | ((agent: AgentIdentity | undefined) => boolean | undefined);
};

/**
 * An {@link HpaReader} told its facts directly: for tests and the embedded default.
 */
export class InMemoryHpaReader implements HpaReader {
  readonly #byTarget = new Map<string, InMemoryHpa>();
  readonly #known = new Set<string>();

  /** Records that `hpa` targets the workload (null: that none does). */
  set(
    target: Pick<WorkloadRef, 'group' | 'kind' | 'namespace' | 'name'>,
    hpa: InMemoryHpa | null,
  ): void {
    const key = keyOf(target);
    this.#known.add(key);
    if (hpa === null) this.#byTarget.delete(key);
    else this.#byTarget.set(key, hpa);
  }

  async hpaFor(ref: WorkloadRef, agent: AgentIdentity | undefined): Promise<HpaFact | null | undefined> {
    const key = keyOf(ref);
    if (!this.#known.has(key)) return undefined;
    const hpa = this.#byTarget.get(key);
    if (hpa === undefined) return null;
    const canWrite = typeof hpa.familyCanWrite === 'function' ? hpa.familyCanWrite(agent) : hpa.familyCanWrite;
    return { namespace: hpa.namespace, name: hpa.name, desiredReplicas: hpa.desiredReplicas, familyCanWrite: canWrite };
  }
}
