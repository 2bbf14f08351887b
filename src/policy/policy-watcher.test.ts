import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PolicySetLoad } from './policy-loader.ts';
import { PolicyStore } from './policy-store.ts';
import type { ApplyResult } from './policy-store.ts';
import { watchPolicyDirectory } from './policy-watcher.ts';
import type { PolicyWatcher, PolicyWatcherOptions } from './policy-watcher.ts';

const policy = (name: string): string =>
  `apiVersion: replica-guard.io/v1alpha1\nkind: ReplicaPolicy\nmetadata: {name: ${name}}\nspec: {mode: audit, agents: {users: [bob]}}\n`;

/** Polls `probe` until it returns something truthy; the assertion is the probe, never the delay. */
async function waitFor<T>(probe: () => T | undefined | false | null, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false && value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('watchPolicyDirectory', () => {
  let dir: string;
  let store: PolicyStore;
  let results: { result: ApplyResult; load: PolicySetLoad }[];
  let watcher: PolicyWatcher | undefined;

  const names = (): string | undefined => store.current()?.policies.map((p) => p.name).join(',');
  const start = (options: Partial<PolicyWatcherOptions> = {}): PolicyWatcher => {
    watcher = watchPolicyDirectory(dir, {
      store,
      debounceMs: 20,
      // Long enough that only file-system events can explain a reload within a test.
      pollIntervalMs: 60_000,
      onResult: (result, load) => results.push({ result, load }),
      now: () => new Date('2026-01-01T00:00:00Z'),
      ...options,
    });
    return watcher;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-watch-'));
    store = new PolicyStore();
    results = [];
    watcher = undefined;
  });
  afterEach(async () => {
    await watcher?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads at once, then picks up a changed file, and keeps the last good set through a broken edit', async () => {
    await writeFile(join(dir, 'p.yaml'), policy('first'));
    start();
    await waitFor(() => names() === 'first', 'the initial load');

    await writeFile(join(dir, 'p.yaml'), policy('second'));
    await waitFor(() => names() === 'second', 'the edit to be applied');

    await writeFile(join(dir, 'p.yaml'), 'spec: {mode: [\n');
    const rejected = await waitFor(() => results.find((r) => r.result.outcome === 'rejected'), 'the broken edit to be rejected');
    expect(rejected.load.problems[0]?.message).toMatch(/YAML syntax error/);
    expect(names()).toBe('second');
  });

  it('picks up a Kubernetes-style atomic swap of the ..data symlink', async () => {
    await mkdir(join(dir, '..2026_a'));
    await writeFile(join(dir, '..2026_a', 'p.yaml'), policy('old'));
    await symlink('..2026_a', join(dir, '..data'));
    await symlink('..data/p.yaml', join(dir, 'p.yaml'));
    start();
    await waitFor(() => names() === 'old', 'the initial load');

    await mkdir(join(dir, '..2026_b'));
    await writeFile(join(dir, '..2026_b', 'p.yaml'), policy('new'));
    await symlink('..2026_b', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(join(dir, '..2026_a'), { recursive: true });
    await waitFor(() => names() === 'new', 'the swapped content to be applied');
    expect(results.every((r) => r.result.outcome !== 'rejected')).toBe(true);
  });

  it('falls back on polling when no file-system event arrives', async () => {
    await writeFile(join(dir, 'p.yaml'), policy('first'));
    // A debounce longer than the test keeps event-driven reloads out of the picture.
    start({ debounceMs: 600_000, pollIntervalMs: 30 });
    await waitFor(() => names() === 'first', 'the initial load');
    await writeFile(join(dir, 'p.yaml'), policy('polled'));
    await waitFor(() => names() === 'polled', 'the poll to pick up the edit');
  });

  it('survives the directory disappearing and coming back', async () => {
    await writeFile(join(dir, 'p.yaml'), policy('first'));
    start({ pollIntervalMs: 30 });
    await waitFor(() => names() === 'first', 'the initial load');

    await rm(dir, { recursive: true });
    const gone = await waitFor(
      () => results.find((r) => r.result.outcome === 'rejected' && /no such file or directory/.test(r.load.problems[0]?.message ?? '')),
      'the missing directory to be reported',
    );
    expect(gone.result.reason).toMatch(/keeping the last good set/);
    expect(names()).toBe('first');

    await mkdir(dir);
    await writeFile(join(dir, 'p.yaml'), policy('back'));
    await waitFor(() => names() === 'back', 'the recreated directory to be loaded');

    // The watch is re-established on the new directory, so events work again, not just the poll.
    await watcher?.close();
    start({ pollIntervalMs: 60_000 });
    await writeFile(join(dir, 'p.yaml'), policy('watched'));
    await waitFor(() => names() === 'watched', 'an event on the recreated directory');
  });

  it('reports a load that throws as rejected, and goes on after onResult throws', async () => {
    let calls = 0;
    const w = start({
      load: () => {
        calls++;
        return Promise.reject(new Error('disk on fire'));
      },
      onResult: (result, load) => {
        results.push({ result, load });
        throw new Error('the logger broke');
      },
    });
    const first = await waitFor(() => results[0], 'the first result');
    expect(first.result.outcome).toBe('rejected');
    expect(first.load.problems[0]?.message).toBe('loading the policies failed: disk on fire');
    const again = await w.reload();
    expect(again.outcome).toBe('rejected');
    expect(calls).toBe(2);
  });

  it('reload() waits for its own load and close() stops further reloads', async () => {
    await writeFile(join(dir, 'p.yaml'), policy('first'));
    const w = start();
    expect((await w.reload()).outcome).toMatch(/applied|unchanged/);
    expect(names()).toBe('first');
    await w.close();
    const count = results.length;
    await writeFile(join(dir, 'p.yaml'), policy('second'));
    expect((await w.reload()).reason).toBe('the policy watcher is closed');
    expect(results.length).toBe(count);
    expect(names()).toBe('first');
  });
});
