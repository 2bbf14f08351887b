import { expect } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { KubeView, type KubeViewOptions } from '../../src/cluster/kube-view.ts';
import type { ListWatchTuning } from '../../src/cluster/list-watch.ts';
import type { KubeObject } from '../fake-apiserver/fake-apiserver.ts';

/** Short intervals: the fake sends bookmarks every 50 ms, a watch silent for 250 ms is stalled. */
export const FAST: Partial<ListWatchTuning> = {
  pageSize: 3,
  bookmarkIntervalMs: 50,
  stallFactor: 5,
  backoffInitialMs: 20,
  backoffMaxMs: 200,
  watchTimeoutSeconds: [5, 10],
  requestTimeoutMs: 2_000,
};

export function startView(url: string, options: Partial<KubeViewOptions> = {}): KubeView {
  const view = new KubeView({
    connection: { baseUrl: url },
    clock: systemClock,
    tuning: FAST,
    losses: { graceMs: 3_000, settleMs: 300 },
    ...options,
  });
  view.start();
  return view;
}

const container = (image: string, args: string[] = []) => ({ name: 'main', image, args, env: [{ name: 'TOKEN', value: 'secret' }] });

export function podTemplate(serviceAccount: string, image = 'registry.local/agent:1.0', args: string[] = ['--serve']) {
  return { metadata: { labels: { app: 'x' } }, spec: { serviceAccountName: serviceAccount, containers: [container(image, args)] } };
}

export interface Owner {
  readonly apiVersion: string;
  readonly kind: string;
  readonly uid: string;
}

const ownerRefs = (owner: Owner | undefined) =>
  owner ? { ownerReferences: [{ apiVersion: owner.apiVersion, kind: owner.kind, name: 'owner', uid: owner.uid, controller: true }] } : {};

export function deployment(namespace: string, name: string, replicas: number, sa = 'agent-1', image?: string): KubeObject {
  return { metadata: { namespace, name }, spec: { replicas, template: podTemplate(sa, image) } };
}

export function replicaSet(namespace: string, name: string, replicas: number, owner?: Owner, sa = 'agent-1', managedFields?: unknown[]): KubeObject {
  return {
    metadata: { namespace, name, ...ownerRefs(owner), ...(managedFields ? { managedFields } : {}) },
    spec: { replicas, template: podTemplate(sa) },
  };
}

export function pod(namespace: string, name: string, owner: Owner | undefined, phase = 'Running', sa = 'agent-1'): KubeObject {
  return {
    metadata: { namespace, name, ...ownerRefs(owner) },
    spec: { serviceAccountName: sa, containers: [container('registry.local/agent:1.0', ['--serve'])] },
    status: { phase },
  };
}

export function node(name: string, labels: Record<string, string> = {}): KubeObject {
  return { metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } }, status: { conditions: [{ type: 'Ready', status: 'True' }] } };
}

export function ownerOf(o: KubeObject, kind: string, apiVersion = 'apps/v1'): Owner {
  return { apiVersion, kind, uid: o.metadata.uid ?? '' };
}

/** Waits until `check` stops throwing. */
export async function eventually(check: () => void, timeoutMs = 5_000): Promise<void> {
  await expect.poll(() => {
    try {
      check();
      return true;
    } catch {
      return false;
    }
  }, { timeout: timeoutMs, interval: 20 }).toBe(true);
  check();
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
