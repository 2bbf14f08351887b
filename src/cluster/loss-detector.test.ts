import { describe, expect, it } from 'vitest';
import type { Clock } from '../clock.ts';
import type { OwnerFacts, PodFacts } from './kube-snapshot.ts';
import { classifyPodEnd, countWriter, LossDetector, type LossEvent, podEnd, type PodEnd } from './loss-detector.ts';

const pod = (over: Partial<PodFacts> = {}): PodFacts => ({
  uid: 'p1',
  ownerUid: 'rs1',
  phase: 'Running',
  deleting: false,
  serviceAccount: 'agent-1',
  revision: undefined,
  cpuRequestMillis: undefined,
  ...over,
});
const owner = (over: Partial<OwnerFacts> = {}): OwnerFacts => ({ steady: 3, terminal: false, deleting: false, ...over });
const end = (over: Partial<PodEnd> = {}): PodEnd => ({ reason: 'deleted', atMs: 100_000, ownerUid: 'rs1', revision: undefined, ...over });
const windows = { graceMs: 60_000, settleMs: 5_000 };

describe('podEnd', () => {
  it('ends a pod that fails, is being deleted or is deleted', () => {
    expect(podEnd(pod(), pod({ phase: 'Failed' }), false)).toBe('failed');
    expect(podEnd(pod(), pod({ deleting: true }), false)).toBe('deleted');
    expect(podEnd(pod(), pod(), true)).toBe('deleted');
    expect(podEnd(undefined, pod(), true)).toBe('deleted');
    expect(podEnd(pod(), pod({ phase: 'Running' }), false)).toBeUndefined();
  });

  it('never ends a pod twice, and never for a Succeeded one', () => {
    expect(podEnd(pod({ phase: 'Failed' }), pod({ phase: 'Failed' }), true)).toBeUndefined();
    expect(podEnd(pod({ deleting: true }), pod({ deleting: true, phase: 'Failed' }), false)).toBeUndefined();
    expect(podEnd(pod(), pod({ phase: 'Succeeded' }), false)).toBeUndefined();
    expect(podEnd(pod({ phase: 'Succeeded' }), pod({ phase: 'Succeeded' }), true)).toBeUndefined();
    expect(podEnd(pod(), pod({ phase: 'Succeeded' }), true)).toBeUndefined();
  });
});

describe('classifyPodEnd', () => {
  it('counts a pod deleted while its owner kept its count', () => {
    expect(classifyPodEnd(end(), owner(), [], windows)).toEqual({ loss: true });
    expect(classifyPodEnd(end({ reason: 'failed' }), owner(), [], windows)).toEqual({ loss: true });
  });

  it('counts a bare pod (no owner) that ends', () => {
    expect(classifyPodEnd(end({ ownerUid: undefined }), undefined, [], windows)).toEqual({ loss: true });
  });

  it('excuses one pod end per instance of a recent count drop, within the grace period and the settle time', () => {
    const drops = [{ atMs: 90_000, remaining: 1 }];
    expect(classifyPodEnd(end(), owner(), drops, windows)).toMatchObject({ loss: false, why: 'count-lowered', drop: 0 });
    expect(classifyPodEnd(end(), owner(), [{ atMs: 90_000, remaining: 0 }], windows)).toEqual({ loss: true });
    // A drop seen just after the pod end (the other watch was behind) still excuses it.
    expect(classifyPodEnd(end(), owner(), [{ atMs: 103_000, remaining: 2 }], windows)).toMatchObject({ loss: false });
    // Too old or too late: a loss.
    expect(classifyPodEnd(end(), owner(), [{ atMs: 30_000, remaining: 1 }], windows)).toEqual({ loss: true });
    expect(classifyPodEnd(end(), owner(), [{ atMs: 106_000, remaining: 1 }], windows)).toEqual({ loss: true });
  });

  it('excuses pods of an owner that is gone, being deleted or finished', () => {
    expect(classifyPodEnd(end(), undefined, [], windows)).toMatchObject({ loss: false, why: 'owner-gone' });
    expect(classifyPodEnd(end(), owner({ deleting: true }), [], windows)).toMatchObject({ why: 'owner-deleting' });
    expect(classifyPodEnd(end(), owner({ terminal: true }), [], windows)).toMatchObject({ why: 'owner-finished' });
  });

  it('excuses the replacement of old-revision pods by a rollout, but not their failure', () => {
    const sts = owner({ revision: 'web-2' });
    expect(classifyPodEnd(end({ revision: 'web-1' }), sts, [], windows)).toMatchObject({ why: 'rollout' });
    expect(classifyPodEnd(end({ revision: 'web-2' }), sts, [], windows)).toEqual({ loss: true });
    expect(classifyPodEnd(end({ revision: 'web-1', reason: 'failed' }), sts, [], windows)).toEqual({ loss: true });
    expect(classifyPodEnd(end(), owner({ rollingOut: true }), [], windows)).toMatchObject({ why: 'rollout' });
  });
});

describe('countWriter', () => {
  const entry = (manager: string, time: string, fields: unknown, extra: Record<string, string> = {}) => ({
    manager,
    operation: 'Update',
    apiVersion: 'apps/v1',
    time,
    fieldsType: 'FieldsV1',
    fieldsV1: fields,
    ...extra,
  });
  const replicas = { 'f:spec': { 'f:replicas': {} } };

  it('names the latest manager owning the count field, scale subresource included', () => {
    const managed = [
      entry('kubectl-client-side-apply', '2025-01-01T10:00:00Z', { 'f:spec': { 'f:replicas': {}, 'f:template': {} } }),
      entry('kube-controller-manager', '2025-01-01T10:05:00Z', replicas, { subresource: 'scale' }),
      entry('someone', '2025-01-01T10:09:00Z', { 'f:metadata': { 'f:labels': {} } }),
    ];
    expect(countWriter(managed, [['spec', 'replicas']])).toEqual({
      manager: 'kube-controller-manager',
      operation: 'Update',
      subresource: 'scale',
      time: '2025-01-01T10:05:00Z',
    });
  });

  it('reads nested and several count paths, and prefers the later entry on a tie', () => {
    const managed = [
      entry('a', '2025-01-01T10:00:00Z', { 'f:spec': { 'f:parallelism': {} } }),
      entry('b', '2025-01-01T10:00:00Z', { 'f:spec': { 'f:suspend': {} } }),
    ];
    expect(countWriter(managed, [['spec', 'parallelism'], ['spec', 'suspend']])?.manager).toBe('b');
    expect(countWriter(managed, [['spec', 'completions']])).toBeUndefined();
    expect(countWriter(undefined, [['spec', 'replicas']])).toBeUndefined();
  });
});

describe('LossDetector', () => {
  function setup(owners: Map<string, OwnerFacts>) {
    let now = 1_000_000;
    const clock: Clock = { now: () => new Date(now), monotonicMs: () => now };
    const detector = new LossDetector({
      clock,
      lookups: { owner: (uid) => owners.get(uid), topOwner: () => undefined },
      graceMs: 60_000,
      settleMs: 5_000,
      keep: 3,
    });
    const losses: LossEvent[] = [];
    detector.onLoss((e) => losses.push(e));
    return {
      detector,
      losses,
      advance: (ms: number) => {
        now += ms;
      },
    };
  }

  it('judges a pod end after the settle time, so a drop that arrives late still excuses it', () => {
    const owners = new Map([['rs1', owner({ steady: 2 })]]);
    const { detector, losses, advance } = setup(owners);
    detector.podChanged('ns', 'p', pod(), pod({ deleting: true }), false);
    advance(1_000);
    detector.ownerChanged('rs1', owner({ steady: 3 }), owner({ steady: 2 }));
    detector.flush();
    expect(detector.pendingEnds).toBe(1);
    advance(5_000);
    detector.flush();
    expect(detector.pendingEnds).toBe(0);
    expect(losses).toEqual([]);
    detector.stop();
  });

  it('lets one drop of one excuse one pod end, and counts the next', () => {
    const owners = new Map([['rs1', owner({ steady: 2 })]]);
    const { detector, losses, advance } = setup(owners);
    detector.ownerChanged('rs1', owner({ steady: 3 }), owner({ steady: 2 }));
    detector.podChanged('ns', 'a', pod({ uid: 'a' }), pod({ uid: 'a', deleting: true }), false);
    detector.podChanged('ns', 'b', pod({ uid: 'b' }), pod({ uid: 'b', phase: 'Failed' }), false);
    advance(6_000);
    detector.flush();
    expect(losses.map((l) => [l.name, l.reason])).toEqual([['b', 'failed']]);
    detector.stop();
  });

  it('keeps the drops a batch of ends judged late still needs, and those of an end whose window covers them', () => {
    const owners = new Map([['rs1', owner({ steady: 2 })]]);
    const { detector, losses, advance } = setup(owners);
    // Drops at 0 and 1 s; ends at 60 s and 60.5 s; judged together, late, at 66.5 s: the
    // second end's window (from 0.5 s) still holds the second drop.
    detector.ownerChanged('rs1', owner({ steady: 4 }), owner({ steady: 3 }));
    advance(1_000);
    detector.ownerChanged('rs1', owner({ steady: 3 }), owner({ steady: 2 }));
    advance(59_000);
    detector.podChanged('ns', 'e1', pod({ uid: 'e1' }), pod({ uid: 'e1', deleting: true }), false);
    advance(500);
    detector.podChanged('ns', 'e2', pod({ uid: 'e2' }), pod({ uid: 'e2', deleting: true }), false);
    advance(6_000);
    detector.flush();
    expect(losses).toEqual([]);

    // A drop at 1 s, an end at 60.5 s, then the count drops again from 65.6 s to 66.1 s,
    // past the first drop's 65 s, before the end is judged at 66.5 s: the end's window
    // (from 0.5 s) still holds the first drop.
    const second = setup(owners);
    second.advance(1_000);
    second.detector.ownerChanged('rs1', owner({ steady: 3 }), owner({ steady: 2 }));
    second.advance(59_500);
    second.detector.podChanged('ns', 'e', pod({ uid: 'e' }), pod({ uid: 'e', deleting: true }), false);
    second.advance(5_100);
    for (let i = 0; i < 6; i++) {
      second.detector.ownerChanged('rs1', owner({ steady: 3 }), owner({ steady: 2 }));
      second.advance(100);
    }
    second.advance(300);
    second.detector.flush();
    expect(second.losses).toEqual([]);
    detector.stop();
    second.detector.stop();
  });

  it('matches pod ends to the drops of an owner whose count flaps, oldest first, and forgets drops past their window', () => {
    const owners = new Map([['rs1', owner({ steady: 2 })]]);
    const { detector, losses, advance } = setup(owners);
    // 1,000 drops of one, 10 ms apart, then the first 400 pods end: each uses one drop.
    for (let i = 0; i < 1_000; i++) {
      detector.ownerChanged('rs1', owner({ steady: 3 }), owner({ steady: 2 }));
      advance(10);
    }
    for (let i = 0; i < 400; i++) detector.podChanged('ns', `a${i}`, pod({ uid: `a${i}` }), pod({ uid: `a${i}`, deleting: true }), false);
    advance(6_000);
    detector.flush();
    expect(losses).toEqual([]);
    // 70 s on, the 600 drops left are past the grace period: a pod that ends now is a loss,
    // and a new drop excuses the next one.
    advance(70_000);
    detector.ownerChanged('rs1', owner({ steady: 3 }), owner({ steady: 2 }));
    detector.podChanged('ns', 'b', pod({ uid: 'b' }), pod({ uid: 'b', deleting: true }), false);
    detector.podChanged('ns', 'c', pod({ uid: 'c' }), pod({ uid: 'c', deleting: true }), false);
    advance(6_000);
    detector.flush();
    expect(losses.map((l) => l.name)).toEqual(['c']);
    detector.stop();
  });

  it('judges each of many pod ends once, when its own settle time has passed, however often it flushes', () => {
    const owners = new Map([['rs1', owner({ steady: 2 })]]);
    const { detector, losses, advance } = setup(owners);
    const judged: number[] = [];
    for (let i = 0; i < 300; i++) {
      detector.podChanged('ns', `p${i}`, pod({ uid: `p${i}` }), pod({ uid: `p${i}`, phase: 'Failed' }), false);
      advance(50);
      detector.flush();
      judged.push(losses.length);
    }
    // 5 s of settle time at one end per 50 ms: the first is judged on the 100th flush.
    expect(judged[98]).toBe(0);
    expect(judged[99]).toBe(1);
    expect(judged[299]).toBe(201);
    advance(5_000);
    detector.flush();
    expect(losses.map((l) => l.name)).toEqual(Array.from({ length: 300 }, (_, i) => `p${i}`));
    detector.stop();
  });

  it('counts a pod once when it fails and is then deleted, even if a re-list loses its history', () => {
    const owners = new Map([['rs1', owner()]]);
    const { detector, losses, advance } = setup(owners);
    detector.podChanged('ns', 'a', pod(), pod({ phase: 'Failed' }), false);
    detector.podChanged('ns', 'a', undefined, pod({ phase: 'Failed', deleting: true }), false);
    detector.podChanged('ns', 'a', pod({ phase: 'Failed' }), pod({ phase: 'Failed' }), true);
    advance(6_000);
    detector.flush();
    expect(losses).toHaveLength(1);
    expect(detector.recentLosses()).toHaveLength(1);
    detector.stop();
  });

  it('keeps only the last N losses and reports lowered counts with their manager', () => {
    const { detector, advance } = setup(new Map([['rs1', owner()]]));
    for (const n of ['a', 'b', 'c', 'd']) detector.podChanged('ns', n, pod({ uid: n }), pod({ uid: n }), true);
    advance(6_000);
    detector.flush();
    expect(detector.recentLosses().map((l) => l.name)).toEqual(['b', 'c', 'd']);
    const lowered: unknown[] = [];
    detector.onCountLowered((e) => lowered.push(e));
    detector.countLowered('d1', { group: 'apps', kind: 'Deployment', namespace: 'ns', name: 'd' }, 3, 1, {
      manager: 'kubectl',
      operation: 'Update',
      subresource: 'scale',
      time: undefined,
    });
    expect(lowered).toEqual([expect.objectContaining({ uid: 'd1', from: 3, to: 1, manager: 'kubectl', subresource: 'scale' })]);
    detector.stop();
  });
});
