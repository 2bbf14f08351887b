import type { AgentIdentity, WorkloadRef } from '../core/types.ts';
import type { HpaFact, HpaReader } from '../load/hpa-load-source.ts';
import { accessSubjectOf, type ResourceAccess, type SubjectAccessReviews } from './access-review.ts';
import type { ViewAutoscaler } from './kube-view.ts';

/**
 * Whether the agent created or changed the object with this UID through the guard (its
 * provenance in the ledger). Rejects or answers undefined when that cannot be read.
 */
export type ProvenanceLookup = (agent: AgentIdentity, uid: string) => Promise<boolean | undefined>;

export interface ViewHpaReaderOptions {
  /** The cluster view's HPA lookup ({@link KubeView.autoscalerOf}). */
  readonly view: { autoscalerOf(ref: WorkloadRef): ViewAutoscaler | null | undefined };
  readonly access: Pick<SubjectAccessReviews, 'allowed'>;
  readonly provenance: ProvenanceLookup;
}

/**
 * The writes that would let an agent steer an HPA's desired replicas: `update` and `patch`
 * of the object (its `minReplicas`, `maxReplicas`, metrics) and of its `status`
 * subresource, where `desiredReplicas` itself is written: until the HPA controller next
 * reconciles (15 s by default) a forged status is what the guard would read.
 */
const HPA_WRITES: readonly Pick<ResourceAccess, 'verb' | 'subresource'>[] = [
  { verb: 'update' },
  { verb: 'patch' },
  { verb: 'update', subresource: 'status' },
  { verb: 'patch', subresource: 'status' },
];

/**
 * The hpa load source's reader over the cluster view: the HPA targeting a workload and its
 * desired replicas from the view's cache, and whether the agent's family can write it —
 * yes when the HPA's UID is in the agent's provenance (it created or changed it through the
 * guard), or when a SubjectAccessReview says the agent may update or patch it; not known
 * (which the source treats as yes) when either lookup fails or the deadline passes first.
 * Both are asked at once; the reviews are cached by {@link SubjectAccessReviews}, the
 * provenance is read afresh, since an agent's own write must count from the next request.
 *
 * Kept apart from the view because it reaches the network (the reviews) and the ledger
 * (the provenance), which the view's synchronous lookups never do.
 */
export class ViewHpaReader implements HpaReader {
  readonly #view: ViewHpaReaderOptions['view'];
  readonly #access: ViewHpaReaderOptions['access'];
  readonly #provenance: ProvenanceLookup;

  constructor(options: ViewHpaReaderOptions) {
    this.#view = options.view;
    this.#access = options.access;
    this.#provenance = options.provenance;
  }

  async hpaFor(ref: WorkloadRef, agent: AgentIdentity | undefined, signal: AbortSignal): Promise<HpaFact | null | undefined> {
    const hpa = this.#view.autoscalerOf(ref);
    if (hpa === null || hpa === undefined) return hpa;
    const familyCanWrite = agent === undefined ? undefined : await this.#familyCanWrite(agent, hpa, signal);
    return { namespace: hpa.namespace, name: hpa.name, desiredReplicas: hpa.desiredReplicas, familyCanWrite };
  }

  async #familyCanWrite(agent: AgentIdentity, hpa: ViewAutoscaler, signal: AbortSignal): Promise<boolean | undefined> {
    const subject = accessSubjectOf(agent);
    const answers = await Promise.all([
      hpa.uid === undefined ? undefined : untilAborted(this.#provenanceOf(agent, hpa.uid), signal),
      ...HPA_WRITES.map((write) =>
        subject === undefined
          ? undefined
          : this.#access.allowed(
              subject,
              { ...write, group: 'autoscaling', resource: 'horizontalpodautoscalers', namespace: hpa.namespace, name: hpa.name },
              signal,
            ),
      ),
    ]);
    if (answers.includes(true)) return true;
    if (answers.includes(undefined)) return undefined;
    return false;
  }

  async #provenanceOf(agent: AgentIdentity, uid: string): Promise<boolean | undefined> {
    try {
      return await this.#provenance(agent, uid);
    } catch {
      return undefined;
    }
  }
}

/** The promise's value, or undefined once the signal fires first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve(undefined);
      },
    );
  });
}
