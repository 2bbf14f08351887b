import type { ClusterView } from './cluster-view.ts';
import {
  type AgentLedgerState,
  confirmObserved,
  expire,
  forgetGoneProvenance,
  isHashedId,
  type LedgerLimits,
} from '../core/ledger-state.ts';
import type { AgentIdentity, WorkloadRef, WorkloadSnapshot } from '../core/types.ts';

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
  if (next.reservations.length > 0) next = confirmShown(next, agent, view, now, limits, judged);
  return forgetGoneProvenance(expire(next, now, limits), (uid) => view.isGone(uid));
}

/**
 * Confirms the reservations the view shows at their count or more. A reservation made when
 * the workload already had a UID is looked up by it; one made on a CREATE (named by a hash
 * of its path) is found among the family's members, read from the view's aggregates and
 * left as soon as nothing is waiting.
 */
function confirmShown(
  state: AgentLedgerState,
  agent: AgentIdentity,
  view: ClusterView,
  now: Date,
  limits: LedgerLimits,
  judged: WorkloadRef,
): AgentLedgerState {
  let next = state;
  // A reservation keeps a UID as it is and hashes a path: when none is hashed, no path
  // need be hashed to match one, and no member need be walked for a CREATE's.
  const byPath = (s: AgentLedgerState) => s.reservations.some((r) => isHashedId(r.workload));
  const paths = byPath(state);
  const confirm = (m: WorkloadSnapshot) => {
    const uid = m.ref.uid ? [m.ref.uid] : [];
    const ids = paths ? [`${m.ref.group}/${m.ref.kind}/${m.ref.namespace}/${m.ref.name}`, ...uid] : uid;
    if (ids.length > 0) next = confirmObserved(next, ids, m.count.steady, now, limits).state;
  };
  for (const r of state.reservations) {
    const byUid = view.workloadByUid(r.workload);
    if (byUid) confirm(byUid);
  }
  if (judged !== NO_WORKLOAD) {
    const self = view.workload(judged.group, judged.kind, judged.namespace, judged.name);
    if (self) confirm(self);
  }
  if (!byPath(next)) return next;
  for (const m of view.family({ agent, provenance: next.provenance, ignoreImages: [], excluding: judged }).members()) {
    confirm(m);
    if (!byPath(next)) break;
  }
  return next;
}

/** Whether the state holds something housekeeping will change later: reservations waiting for the view. */
export function awaitsHousekeeping(state: AgentLedgerState): boolean {
  return state.reservations.length > 0;
}
