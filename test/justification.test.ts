import { afterEach, describe, expect, it } from 'vitest';
import { review, scaleReview } from './helpers/fixtures.ts';
import { policy, type TestGuard, testGuard } from './helpers/guard.ts';

// "Show your work": growth beyond the need must carry a fresh replica-guard.io/justification,
// changed in the request or since the family's last recorded growth (the ledger keeps a hash).

const JUSTIFICATION = 'replica-guard.io/justification';
let guard: TestGuard;
afterEach(async () => {
  await guard.close();
});

function start(required: 'beyondNeed' | 'always' = 'beyondNeed'): void {
  guard = testGuard({
    policies: policy('why', { mode: 'enforce', need: { static: 3, onUnavailable: 'caps' }, limits: { headroom: 10, perWorkload: 100 }, justification: { required } }),
  });
}

const create = (replicas: number, text?: string) =>
  review('deployment-create-agent', { replicas, ...(text ? { annotations: { [JUSTIFICATION]: text } } : {}) });
/** An update of agent-web from `from` to `to`, the justification before and after as given. */
const update = (from: number, to: number, before?: string, after?: string) => {
  const r = review('deployment-replace-agent-10', { oldReplicas: from, replicas: to });
  if (before !== undefined) r.request.oldObject = { ...r.request.oldObject, metadata: { ...r.request.oldObject?.metadata, annotations: { [JUSTIFICATION]: before } } };
  if (after !== undefined) r.request.object = { ...r.request.object, metadata: { ...r.request.object?.metadata, annotations: { [JUSTIFICATION]: after } } };
  return r;
};

describe('required justification, Deployment update', () => {
  it('missing: denied with what to add; growth within the need needs none', async () => {
    start();
    expect((await guard.review('validate', update(2, 3))).allowed).toBe(true);
    const answer = await guard.review('validate', update(3, 6));
    expect(answer.allowed).toBe(false);
    expect(answer.status?.message).toContain(`add "${JUSTIFICATION}": "<why 6 instances are needed now>" in this Deployment's metadata.annotations`);
    expect(answer.auditAnnotations).toMatchObject({ limit: 'justification' });
  });

  it('fresh (changed in the request): allowed, and the audit line and auditAnnotations keep the text', async () => {
    start();
    const answer = await guard.review('validate', update(3, 6, undefined, 'queue depth tripled since 09:00'));
    expect(answer.allowed).toBe(true);
    expect(answer.auditAnnotations?.justification).toBe('queue depth tripled since 09:00');
    expect(guard.lastAudit()).toMatchObject({ verdict: 'allowed', justification: 'queue depth tripled since 09:00' });
  });

  it('stale (the same text as the last recorded growth): denied until it changes', async () => {
    start();
    expect((await guard.review('validate', update(3, 6, undefined, 'batch backlog'))).allowed).toBe(true);
    const stale = await guard.review('validate', update(6, 8, 'batch backlog', 'batch backlog'));
    expect(stale.allowed).toBe(false);
    expect(stale.status?.message).toContain('already given for the last recorded growth');
    // A dry run is judged the same way and records nothing.
    expect((await guard.review('validate', review('deployment-replace-agent-10', { oldReplicas: 6, replicas: 8, dryRun: true }))).allowed).toBe(false);
    expect((await guard.review('validate', update(6, 8, 'batch backlog', 'backlog doubled again'))).allowed).toBe(true);
  });

  it("a text set since the family's last growth, without growth, is fresh for the next one", async () => {
    start('always');
    expect((await guard.review('validate', create(2, 'first wave'))).allowed).toBe(true);
    // Unchanged in the request, but not what the last recorded growth carried.
    expect((await guard.review('validate', update(2, 3, 'second wave', 'second wave'))).allowed).toBe(true);
    expect((await guard.review('validate', update(3, 4, 'second wave', 'second wave'))).allowed).toBe(false);
  });
});

describe('required justification, Scale request', () => {
  const scale = (from: number, to: number) => scaleReview('agent-web', from, to, '2608c9ab-72dc-49e0-bbfb-0ef0372ba1e6');

  it("is judged by the parent's annotation: missing, stale, then fresh", async () => {
    start();
    expect((await guard.review('validate', create(2))).allowed).toBe(true);
    const missing = await guard.review('validate', scale(2, 6));
    expect(missing.allowed).toBe(false);
    expect(missing.status?.message).toContain("on the Deployment agent-web (a Scale is judged by its parent's annotation), then scale again");

    // The agent explains on the Deployment (no growth), then scales: fresh.
    expect((await guard.review('validate', update(2, 2, undefined, 'traffic from the launch'))).allowed).toBe(true);
    const fresh = await guard.review('validate', scale(2, 6));
    expect(fresh.allowed).toBe(true);
    expect(fresh.auditAnnotations?.justification).toBe('traffic from the launch');
    expect(guard.lastAudit()).toMatchObject({ kind: 'Scale', justification: 'traffic from the launch' });

    // The same reasoning again is stale.
    const stale = await guard.review('validate', scale(6, 8));
    expect(stale.allowed).toBe(false);
    expect(stale.status?.message).toContain('already given for the last recorded growth');
  });
});
