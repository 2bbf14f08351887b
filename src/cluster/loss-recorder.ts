import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { expire, recordLoss } from '../core/ledger-state.ts';
import type { WorkloadSnapshot } from '../core/types.ts';
import type { AgentMatcher } from '../policy/agent-matcher.ts';
import type { GuardMetrics } from '../telemetry/metrics.ts';
import type { ClusterView } from './cluster-view.ts';
import type { Ledger } from './ledger.ts';
import type { CountLoweredEvent, LossEvent } from './loss-detector.ts';

/** The loss events a view emits. */
export interface LossSource {
  onLoss(listener: (event: LossEvent) => void): () => void;
  onCountLowered(listener: (event: CountLoweredEvent) => void): () => void;
}

/** Field managers of the control plane: a count they lower is an HPA or a controller at work. */
const CONTROL_PLANE_MANAGERS = new Set(['kube-controller-manager', 'horizontal-pod-autoscaler']);

/** How long an agent's own admitted scale-down excuses the count drop the view sees after it. */
const OWN_WRITE_MS = 120_000;

export interface LossRecorderDeps {
  readonly source: LossSource;
  /** To find the workload whose count was lowered. */
  readonly view: Pick<ClusterView, 'workload'>;
  readonly ledger: Ledger;
  /** The current matcher: only identities a policy names are agents with a family to pressure. */
  readonly matcher: () => AgentMatcher | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: GuardMetrics;
}

/** Records the view's losses in the ledger of the agents whose family lost them. */
export interface LossRecorder {
  /** The guard admitted an agent's write that lowers this workload's count: not a loss when the view sees it. */
  noteOwnLowering(uid: string, to: number): void;
  stop(): void;
}

/**
 * Turns the view's loss events into ledger records, once per pod UID (or per lowering),
 * for every agent whose family holds the workload: an agent is the service account its
 * pods run as, in the workload's namespace, when a policy names it. Most losses never pass
 * through admission (kubelet evictions, preemption, node loss, other users' deletes),
 * which is why they are read from the view. A count lowered by the HPA or a controller is
 * not a loss, nor is one the agent lowered itself through this guard.
 */
export function startLossRecorder(deps: LossRecorderDeps): LossRecorder {
  const ownLowerings = new Map<string, { to: number; atMs: number }>();

  const agentsOf = (owner: WorkloadSnapshot | undefined): string[] => {
    const matcher = deps.matcher();
    if (!owner || !matcher) return [];
    const out: string[] = [];
    for (const sa of owner.serviceAccounts) {
      const username = `system:serviceaccount:${owner.ref.namespace}:${sa}`;
      if ('agent' in matcher.match({ username, groups: [] })) out.push(username);
    }
    return out;
  };

  const record = (agents: readonly string[], id: string, at: Date, instances: number, kind: 'pod' | 'count') => {
    for (const agent of agents) {
      const now = deps.clock.now();
      deps.ledger
        .transact(agent, (state) => {
          const r = recordLoss(expire(state, now, deps.ledger.limits), id, at, now, deps.ledger.limits, instances);
          return { result: r.isNew, next: r.isNew ? r.state : undefined };
        })
        .then((isNew) => {
          if (!isNew) return;
          deps.metrics.losses.inc({ kind }, instances);
          deps.logger.info({ agent, loss: id, instances, kind }, 'the family lost instances: survival-pressure limits apply');
        })
        .catch((err: unknown) => deps.logger.error({ err, agent, loss: id }, 'could not record a loss'));
    }
  };

  const offLoss = deps.source.onLoss((e) => record(agentsOf(e.topOwner), e.podUid, e.at, 1, 'pod'));
  const offLowered = deps.source.onCountLowered((e) => {
    if (e.controllerUid !== undefined || e.to >= e.from) return;
    if (e.manager !== undefined && CONTROL_PLANE_MANAGERS.has(e.manager)) return;
    const own = ownLowerings.get(e.uid);
    if (own && own.to <= e.to && deps.clock.monotonicMs() - own.atMs < OWN_WRITE_MS) return;
    const owner = deps.view.workload(e.ref.group, e.ref.kind, e.ref.namespace, e.ref.name);
    record(agentsOf(owner), `lowered:${e.uid}:${e.fieldTime ?? e.at.toISOString()}`, e.at, e.from - e.to, 'count');
  });

  return {
    noteOwnLowering(uid, to) {
      ownLowerings.set(uid, { to, atMs: deps.clock.monotonicMs() });
      // Bounded: forget the oldest once the map grows past what two minutes of writes need.
      if (ownLowerings.size > 10_000) {
        const first = ownLowerings.keys().next();
        if (!first.done) ownLowerings.delete(first.value);
      }
    },
    stop() {
      offLoss();
      offLowered();
    },
  };
}
