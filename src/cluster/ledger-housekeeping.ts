import type { ClusterView } from './cluster-view.ts';
import { familyOf } from '../core/family.ts';
import {
  type AgentLedgerState,
  confirmObserved,
  expire,
  forgetGoneProvenance,
  type LedgerLimits,
} from '../core/ledger-state.ts';
import type { AgentIdentity, WorkloadRef } from '../core/types.ts';

/** A reference no workload has: the family walk then leaves nobody out. */
const NO_WORKLOAD: WorkloadRef = { group: '', kind: '', namespace: '', name: '' };

/**
 * An agent's ledger state brought up to what the view shows: reservations the view now
 * shows confirmed (charged to the rate), entries past their windows dropped, and workloads
 * the view saw deleted forgotten. Pure over the view's answers. A decision applies it to
 * what it reads without writing it; the background housekeeper writes it.
 *
 * Confirmation comes before expiry: a reservation is released only when the view never
 * showed it (another admission step refused the write). `judged` is the workload a
 * decision is about, which the family walk leaves out and is looked up on its own.
 */
export function housekept(
  state: AgentLedgerState,
  agent: AgentIdentity,
  view: ClusterView,
  now: Date,
  limits: LedgerLimits,
  judged: WorkloadRef = NO_WORKLOAD,
): AgentLedgerState {
  let next = state;
  if (next.reservations.length > 0) {
    const uids = next.provenance.map((p) => p.uid);
    const shown = familyOf(agent, view, uids, [], judged).members;
    const self = judged === NO_WORKLOAD ? undefined : view.workload(judged.group, judged.kind, judged.namespace, judged.name);
    for (const m of self ? [...shown, self] : shown) {
      const ids = [`${m.ref.group}/${m.ref.kind}/${m.ref.namespace}/${m.ref.name}`, ...(m.ref.uid ? [m.ref.uid] : [])];
      next = confirmObserved(next, ids, m.count.steady, now, limits).state;
      if (next.reservations.length === 0) break;
    }
  }
  return forgetGoneProvenance(expire(next, now, limits), (uid) => view.isGone(uid));
}

/** Whether the state holds something housekeeping will change later: reservations waiting for the view. */
export function awaitsHousekeeping(state: AgentLedgerState): boolean {
  return state.reservations.length > 0;
}
