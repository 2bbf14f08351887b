import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeApiServer, type KubeObject } from './fake-apiserver.ts';

// The fake stands in for the kube-apiserver; these tests hold it to the behaviours the
// guard's code relies on, so that a test passing against it means something.

let fake: FakeApiServer;
beforeEach(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
});
afterEach(async () => {
  await fake.close();
});

const deployment = (name: string, replicas = 1): KubeObject => ({
  metadata: { name, namespace: 'agents' },
  spec: { replicas },
});

async function json(path: string, init?: RequestInit): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${fake.url}${path}`, init);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Reads watch events until `count` arrived or the stream ends. */
async function readEvents(path: string, count: number, signal = AbortSignal.timeout(5000)): Promise<{ type: string; object: KubeObject }[]> {
  const res = await fetch(`${fake.url}${path}`, { signal });
  const events: { type: string; object: KubeObject }[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  if (!res.body) return events;
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let nl = buffer.indexOf('\n');
    while (nl >= 0) {
      events.push(JSON.parse(buffer.slice(0, nl)) as { type: string; object: KubeObject });
      buffer = buffer.slice(nl + 1);
      nl = buffer.indexOf('\n');
    }
    if (events.length >= count) break;
  }
  return events;
}

describe('fake API server', () => {
  it('pages a list from one snapshot, even when objects change between pages', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) fake.put('deployments', deployment(n));
    const first = await json('/apis/apps/v1/namespaces/agents/deployments?limit=2');
    const meta = first.body.metadata as { resourceVersion: string; continue?: string };
    expect((first.body.items as KubeObject[]).map((i) => i.metadata.name)).toEqual(['a', 'b']);
    fake.put('deployments', deployment('c', 9));
    fake.remove('deployments', 'agents', 'd');
    const second = await json(`/apis/apps/v1/namespaces/agents/deployments?limit=2&continue=${meta.continue}`);
    const items = second.body.items as KubeObject[];
    expect(items.map((i) => [i.metadata.name, (i.spec as { replicas: number }).replicas])).toEqual([
      ['c', 1],
      ['d', 1],
    ]);
    expect((second.body.metadata as { resourceVersion: string }).resourceVersion).toBe(meta.resourceVersion);
  });

  it('expires a continue token once its history is compacted', async () => {
    for (const n of ['a', 'b', 'c']) fake.put('deployments', deployment(n));
    const first = await json('/apis/apps/v1/deployments?limit=1');
    fake.put('deployments', deployment('z'));
    fake.compact();
    const token = (first.body.metadata as { continue: string }).continue;
    const second = await json(`/apis/apps/v1/deployments?limit=1&continue=${token}`);
    expect(second.status).toBe(410);
    expect(second.body).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });
  });

  it('rejects a stale resourceVersion with 409 Conflict and bumps it on every write', async () => {
    const created = await json('/api/v1/namespaces/rg/configmaps', {
      method: 'POST',
      body: JSON.stringify({ metadata: { name: 'ledger' }, data: { v: '1' } }),
    });
    expect(created.status).toBe(201);
    const rv = (created.body.metadata as { resourceVersion: string }).resourceVersion;
    const again = await json('/api/v1/namespaces/rg/configmaps', {
      method: 'POST',
      body: JSON.stringify({ metadata: { name: 'ledger' } }),
    });
    expect(again.body).toMatchObject({ code: 409, reason: 'AlreadyExists' });
    const put = (resourceVersion: string) =>
      json('/api/v1/namespaces/rg/configmaps/ledger', {
        method: 'PUT',
        body: JSON.stringify({ metadata: { name: 'ledger', resourceVersion }, data: { v: '2' } }),
      });
    const ok = await put(rv);
    expect(ok.status).toBe(200);
    expect(Number((ok.body.metadata as { resourceVersion: string }).resourceVersion)).toBeGreaterThan(Number(rv));
    const stale = await put(rv);
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ kind: 'Status', reason: 'Conflict' });
    expect((await json('/api/v1/namespaces/rg/configmaps/nope')).status).toBe(404);
  });

  it('refuses a ConfigMap whose data exceeds 1 MiB with 422 Invalid, on create and on update', async () => {
    const path = '/api/v1/namespaces/rg/configmaps';
    const send = (method: string, url: string, bytes: number, resourceVersion?: string) =>
      json(url, {
        method,
        body: JSON.stringify({ metadata: { name: 'big', ...(resourceVersion ? { resourceVersion } : {}) }, data: { a: 'x'.repeat(bytes - 1), b: 'y' } }),
      });
    expect((await send('POST', path, 1024 * 1024 + 1)).body).toMatchObject({ code: 422, reason: 'Invalid' });
    const created = await send('POST', path, 1024 * 1024);
    expect(created.status).toBe(201);
    const rv = (created.body.metadata as { resourceVersion: string }).resourceVersion;
    expect((await send('PUT', `${path}/big`, 1024 * 1024 + 1, rv)).status).toBe(422);
    expect((await send('PUT', `${path}/big`, 10, rv)).status).toBe(200);
  });

  it('can take its time over every request, as a real apiserver and etcd do', async () => {
    fake.setLatency(60);
    const started = performance.now();
    const [a, b] = await Promise.all([json('/api/v1/namespaces/rg/configmaps/x'), json('/api/v1/namespaces/rg/configmaps/y')]);
    expect([a.status, b.status]).toEqual([404, 404]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(50);
    fake.setLatency(0);
  });

  it('streams the changes after a resourceVersion, with bookmarks when asked', async () => {
    fake.put('deployments', deployment('a'));
    const from = fake.revision;
    const events = readEvents(`/apis/apps/v1/deployments?watch=true&resourceVersion=${from}&allowWatchBookmarks=true`, 3);
    fake.put('deployments', deployment('a', 4));
    fake.remove('deployments', 'agents', 'a');
    const got = await events;
    expect(got.map((e) => e.type).slice(0, 2)).toEqual(['MODIFIED', 'DELETED']);
    expect(got.some((e) => e.type === 'BOOKMARK')).toBe(true);
  });

  it('answers a watch from a compacted resourceVersion with a 410 ERROR event', async () => {
    fake.put('deployments', deployment('a'));
    const old = fake.revision;
    fake.put('deployments', deployment('b'));
    fake.compact();
    const [event] = await readEvents(`/apis/apps/v1/deployments?watch=true&resourceVersion=${old - 1}`, 1);
    expect(event).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  });

  it('can hold a watch open while delivering nothing', async () => {
    fake.stallWatches(true);
    const controller = new AbortController();
    const events = readEvents(`/apis/apps/v1/deployments?watch=true&resourceVersion=${fake.revision}&allowWatchBookmarks=true`, 1, controller.signal);
    await expect.poll(() => fake.openWatches).toBe(1);
    fake.put('deployments', deployment('silent'));
    setTimeout(() => controller.abort(), 300);
    await expect(events).rejects.toThrow();
  });

  it('ends watches at timeoutSeconds', async () => {
    const events = await readEvents(`/apis/apps/v1/deployments?watch=true&resourceVersion=${fake.revision}&timeoutSeconds=1`, 100);
    expect(events).toEqual([]);
  });
});

describe('fake API server: controls the cluster view relies on', () => {
  it('answers an intercepted request with the injected status and Retry-After', async () => {
    let seen = 0;
    fake.intercept((req) => {
      seen++;
      return req.path.endsWith('/deployments') ? { status: 429, reason: 'TooManyRequests', retryAfterSeconds: 2 } : undefined;
    });
    const res = await fetch(`${fake.url}/apis/apps/v1/deployments?limit=1`);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(await res.json()).toMatchObject({ kind: 'Status', code: 429, reason: 'TooManyRequests' });
    expect((await json('/api/v1/pods')).status).toBe(200);
    fake.intercept(undefined);
    expect((await json('/apis/apps/v1/deployments')).status).toBe(200);
    expect(seen).toBe(2);
  });

  it('lets a test act between two pages of a list', async () => {
    for (const n of ['a', 'b', 'c']) fake.put('deployments', deployment(n));
    fake.intercept((req) => {
      if (req.query.get('continue')) {
        fake.put('deployments', deployment('zz'));
        fake.compact();
      }
      return undefined;
    });
    const first = await json('/apis/apps/v1/deployments?limit=1');
    const token = (first.body.metadata as { continue: string }).continue;
    expect((await json(`/apis/apps/v1/deployments?limit=1&continue=${token}`)).status).toBe(410);
  });

  it('orders list items by namespace/name bytes, as etcd orders keys', async () => {
    for (const n of ['b', 'B', 'a-1', 'a']) fake.put('deployments', deployment(n));
    const list = await json('/apis/apps/v1/deployments');
    expect((list.body.items as KubeObject[]).map((i) => i.metadata.name)).toEqual(['B', 'a', 'a-1', 'b']);
  });

  it('serves custom resources declared in its options', async () => {
    const custom = await FakeApiServer.start({
      extraResources: [{ group: 'ray.io', version: 'v1', resource: 'rayclusters', kind: 'RayCluster', namespaced: true }],
    });
    try {
      custom.put('rayclusters', { metadata: { name: 'r', namespace: 'agents' }, spec: {} });
      const res = await fetch(`${custom.url}/apis/ray.io/v1/rayclusters`);
      const body = (await res.json()) as { kind: string; items: KubeObject[] };
      expect(body.kind).toBe('RayClusterList');
      expect(body.items.map((i) => i.apiVersion)).toEqual(['ray.io/v1']);
    } finally {
      await custom.close();
    }
  });

  it('stands in for metrics-server: PodMetrics of existing pods with a usage, by label selector', async () => {
    const pod = (name: string, labels: Record<string, string>): KubeObject => ({ metadata: { name, namespace: 'shop', labels }, spec: {} });
    fake.put('pods', pod('web-1', { app: 'web', tier: 'a' }));
    fake.put('pods', pod('web-2', { app: 'web', tier: 'b' }));
    fake.put('pods', pod('api-1', { app: 'api' }));
    fake.put('pods', pod('web-3', { app: 'web' }));
    fake.setPodUsage('shop', 'web-1', { app: '250m', sidecar: '1500000n' });
    fake.setPodUsage('shop', 'web-2', { app: '1' });
    fake.setPodUsage('shop', 'api-1', { app: '2' });
    fake.setPodUsage('shop', 'gone', { app: '2' }); // no such pod: not reported
    // web-3 has no usage yet (not scraped): not reported.
    const names = async (selector: string) => {
      const { status, body } = await json(`/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=${encodeURIComponent(selector)}`);
      expect(status).toBe(200);
      expect(body.kind).toBe('PodMetricsList');
      return (body.items as KubeObject[]).map((i) => i.metadata.name);
    };
    expect(await names('')).toEqual(['api-1', 'web-1', 'web-2']);
    expect(await names('app=web')).toEqual(['web-1', 'web-2']);
    expect(await names('app=web,tier in (b, c)')).toEqual(['web-2']);
    expect(await names('app!=web')).toEqual(['api-1']);
    expect(await names('app,!tier')).toEqual(['api-1']);
    expect(await names('tier notin (a)')).toEqual(['api-1', 'web-2']);
    const one = await json('/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1');
    expect(one.body.containers).toEqual([
      { name: 'app', usage: { cpu: '250m', memory: '41236Ki' } },
      { name: 'sidecar', usage: { cpu: '1500000n', memory: '41236Ki' } },
    ]);
    expect((await json('/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-3')).status).toBe(404);
    expect((await json('/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=app%20in%20x')).status).toBe(400);
    // An empty set is refused, as by the real parser; object prototype keys are no labels.
    expect((await json('/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=app%20in%20()')).status).toBe(400);
    expect(await names('constructor')).toEqual([]);
    fake.remove('pods', 'shop', 'web-2');
    expect(await names('app=web')).toEqual(['web-1']);
  });

  it('answers SubjectAccessReviews from the rules a test sets, with status.allowed only', async () => {
    const ask = async (spec: Record<string, unknown>) =>
      json('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec }),
      });
    const hpa = (verb: string, extra: Record<string, string> = {}) => ({
      verb,
      group: 'autoscaling',
      resource: 'horizontalpodautoscalers',
      namespace: 'shop',
      name: 'web',
      ...extra,
    });
    const agent = { user: 'system:serviceaccount:agents:agent-1', groups: ['system:serviceaccounts:agents'] };
    expect((await ask({ ...agent, resourceAttributes: hpa('patch') })).body.status).toEqual({ allowed: false });
    fake.setAccessRules([
      { groups: ['system:serviceaccounts:agents'], verbs: ['patch'], apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], namespaces: ['shop'] },
      { users: ['alice'], verbs: ['*'], apiGroups: ['*'], resources: ['*'], resourceNames: ['other'] },
    ]);
    const allowed = await ask({ ...agent, resourceAttributes: hpa('patch') });
    expect(allowed.status).toBe(201);
    expect(allowed.body).toMatchObject({ kind: 'SubjectAccessReview', status: { allowed: true } });
    expect((await ask({ ...agent, resourceAttributes: hpa('update') })).body.status).toEqual({ allowed: false });
    expect((await ask({ ...agent, resourceAttributes: hpa('patch', { namespace: 'prod' }) })).body.status).toEqual({ allowed: false });
    // A subresource is not granted by its resource.
    expect((await ask({ ...agent, resourceAttributes: hpa('patch', { subresource: 'status' }) })).body.status).toEqual({ allowed: false });
    // resourceNames limit a grant to those names.
    expect((await ask({ user: 'alice', resourceAttributes: hpa('update') })).body.status).toEqual({ allowed: false });
    expect((await ask({ user: 'alice', resourceAttributes: hpa('update', { name: 'other' }) })).body.status).toEqual({ allowed: true });
    expect((await ask({ resourceAttributes: hpa('patch') })).status).toBe(422);
    expect(fake.accessReviews).toHaveLength(7);
    expect(fake.accessReviews[0]).toMatchObject({ user: agent.user, groups: agent.groups, verb: 'patch', name: 'web' });
  });
});
