import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { ListWatch, type ObjectEventType, type RawObject, type RestartReason } from '../../src/cluster/list-watch.ts';
import { FakeApiServer, type KubeObject } from '../fake-apiserver/fake-apiserver.ts';
import { eventually, FAST, sleep } from './view-helpers.ts';

// The reflector against the fake API server over real HTTP: paging, watching, 410s,
// stalls, failures, and a clean stop.

let fake: FakeApiServer;
let reflector: ListWatch | undefined;

beforeEach(async () => {
  fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
});
afterEach(async () => {
  await reflector?.stop();
  reflector = undefined;
  await fake.close();
});

const cm = (name: string, value = '1'): KubeObject => ({ metadata: { name, namespace: 'ns' }, data: { value } });

/** A sink that keeps what it is told, as a map of key → data.value. */
function recorder() {
  const state = new Map<string, string>();
  const events: { type: ObjectEventType; key: string }[] = [];
  return {
    state,
    events,
    apply(type: ObjectEventType, o: RawObject, key: string) {
      events.push({ type, key });
      if (type === 'DELETED') state.delete(key);
      else state.set(key, String((o.data as { value?: string } | undefined)?.value));
    },
  };
}

function start(sink: ReturnType<typeof recorder>, restarts: RestartReason[] = [], tuning = FAST): ListWatch {
  reflector = new ListWatch({
    connection: { baseUrl: fake.url },
    resource: { group: '', version: 'v1', resource: 'configmaps' },
    sink,
    clock: systemClock,
    tuning,
    onRestart: (r) => restarts.push(r),
  });
  reflector.start();
  return reflector;
}

const lists = () => fake.requests.filter((r) => r === 'GET /api/v1/configmaps').length;
const watches = () => fake.requests.filter((r) => r === 'GET /api/v1/configmaps?watch').length;

describe('ListWatch against the fake API server', () => {
  it('syncs through several pages, then receives changes through the watch', async () => {
    for (let i = 0; i < 10; i++) fake.put('configmaps', cm(`c${i}`));
    const sink = recorder();
    const r = start(sink);
    await r.whenSynced();
    expect(r.synced).toBe(true);
    expect(sink.state.size).toBe(10);
    expect(lists()).toBe(4); // 10 objects, 3 per page
    expect(r.objectCount).toBe(10);

    fake.put('configmaps', cm('c1', '2'));
    fake.remove('configmaps', 'ns', 'c2');
    fake.put('configmaps', cm('new'));
    await eventually(() => {
      expect(sink.state.get('ns/c1')).toBe('2');
      expect(sink.state.has('ns/c2')).toBe(false);
      expect(sink.state.get('ns/new')).toBe('1');
    });
    expect(r.resourceVersion).toBe(String(fake.revision));
  });

  it('moves its resourceVersion with bookmarks and keeps its last activity fresh', async () => {
    const sink = recorder();
    const r = start(sink);
    await r.whenSynced();
    const first = r.lastActivityMs ?? 0;
    await sleep(200);
    expect(r.lastActivityMs ?? 0).toBeGreaterThan(first);
    expect(systemClock.monotonicMs() - (r.lastActivityMs ?? 0)).toBeLessThan(500);
  });

  it('lists again on a 410 Expired watch and loses no update', async () => {
    fake.put('configmaps', cm('a'));
    fake.put('configmaps', cm('b'));
    const sink = recorder();
    const restarts: RestartReason[] = [];
    const r = start(sink, restarts);
    await r.whenSynced();
    await eventually(() => expect(fake.openWatches).toBe(1));
    // Changes the watch never delivers, then history compacted past them.
    fake.stallWatches(true);
    fake.put('configmaps', cm('a', '2'));
    fake.remove('configmaps', 'ns', 'b');
    fake.put('configmaps', cm('c'));
    fake.compact();
    fake.dropWatches();
    fake.stallWatches(false);
    await eventually(() => {
      expect(sink.state.get('ns/a')).toBe('2');
      expect(sink.state.has('ns/b')).toBe(false);
      expect(sink.state.get('ns/c')).toBe('1');
    });
    expect(restarts).toContain('expired');
    expect(lists()).toBe(2);
    // The re-list reported the vanished object as deleted.
    expect(sink.events).toContainEqual({ type: 'DELETED', key: 'ns/b' });
  });

  it('lists again when the watch request itself answers HTTP 410', async () => {
    fake.put('configmaps', cm('a'));
    let gone = true;
    fake.intercept((req) => {
      if (req.watch && gone) {
        gone = false;
        fake.put('configmaps', cm('b'));
        return { status: 410, reason: 'Expired' };
      }
      return undefined;
    });
    const sink = recorder();
    const restarts: RestartReason[] = [];
    const r = start(sink, restarts);
    await r.whenSynced();
    await eventually(() => expect(sink.state.get('ns/b')).toBe('1'));
    expect(restarts[0]).toBe('expired');
    expect(lists()).toBe(2);
  });

  it('restarts a list whose continue token expired mid-way', async () => {
    for (let i = 0; i < 8; i++) fake.put('configmaps', cm(`c${i}`));
    let compacted = false;
    fake.intercept((req) => {
      if (req.query.get('continue') && !compacted) {
        compacted = true;
        fake.put('configmaps', cm('late'));
        fake.remove('configmaps', 'ns', 'c7');
        fake.compact();
      }
      return undefined;
    });
    const sink = recorder();
    const r = start(sink);
    await r.whenSynced();
    expect(compacted).toBe(true);
    expect([...sink.state.keys()].sort()).toEqual(['ns/c0', 'ns/c1', 'ns/c2', 'ns/c3', 'ns/c4', 'ns/c5', 'ns/c6', 'ns/late']);
    // First page, the expired continue, then a whole list again.
    expect(lists()).toBe(2 + 3);
  });

  it('detects a watch that hangs without closing, and watches again', async () => {
    const sink = recorder();
    const restarts: RestartReason[] = [];
    const r = start(sink, restarts);
    await r.whenSynced();
    await eventually(() => expect(watches()).toBe(1));
    fake.stallWatches(true);
    fake.put('configmaps', cm('during-stall'));
    // 5 × 50 ms of silence is a stall; the new watch replays what the hung one never sent.
    await eventually(() => expect(sink.state.get('ns/during-stall')).toBe('1'), 3_000);
    expect(restarts).toContain('stalled');
    expect(watches()).toBeGreaterThanOrEqual(2);
    expect(lists()).toBe(1);
    fake.stallWatches(false);
  });

  it('backs off while the API answers 500, then recovers', async () => {
    fake.put('configmaps', cm('a'));
    let failing = true;
    const times: number[] = [];
    fake.intercept(() => {
      if (!failing) return undefined;
      times.push(performance.now());
      return { status: 500, reason: 'InternalError' };
    });
    const sink = recorder();
    const restarts: RestartReason[] = [];
    const r = start(sink, restarts);
    await eventually(() => expect(times.length).toBeGreaterThanOrEqual(6), 5_000);
    expect(r.synced).toBe(false);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    // 20 ms doubling to a 200 ms cap, with jitter of at most half a step.
    expect(gaps[0]).toBeGreaterThanOrEqual(9);
    expect(Math.max(...gaps)).toBeGreaterThanOrEqual(90);
    expect(Math.max(...gaps)).toBeLessThan(1_500);
    failing = false;
    await r.whenSynced();
    expect(sink.state.get('ns/a')).toBe('1');
    expect(restarts.every((x) => x === 'error')).toBe(true);
  });

  it('waits at least as long as a Retry-After asks, within its cap', async () => {
    let calls = 0;
    const times: number[] = [];
    fake.intercept(() => {
      calls++;
      times.push(performance.now());
      return calls <= 1 ? { status: 429, reason: 'TooManyRequests', retryAfterSeconds: 1 } : undefined;
    });
    const r = start(recorder(), [], { ...FAST, backoffMaxMs: 5_000 });
    await r.whenSynced();
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(950);
  });

  it('stops cleanly: no watch left open, no more requests', async () => {
    const r = start(recorder());
    await r.whenSynced();
    await eventually(() => expect(fake.openWatches).toBe(1));
    await r.stop();
    reflector = undefined;
    await eventually(() => expect(fake.openWatches).toBe(0));
    const count = fake.requests.length;
    await sleep(150);
    expect(fake.requests.length).toBe(count);
  });

  it('stops cleanly while backing off from errors', async () => {
    fake.intercept(() => ({ status: 503, reason: 'ServiceUnavailable' }));
    const r = start(recorder(), [], { ...FAST, backoffInitialMs: 10_000, backoffMaxMs: 10_000 });
    await eventually(() => expect(fake.requests.length).toBeGreaterThanOrEqual(1));
    const started = performance.now();
    await r.stop();
    reflector = undefined;
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
