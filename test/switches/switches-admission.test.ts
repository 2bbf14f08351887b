import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { createSwitchGate } from '../../src/admission/safety-switches.ts';
import type { CliIo } from '../../src/cli/check.ts';
import { runCli } from '../../src/cli/main.ts';
import { FileSwitchStore } from '../../src/cluster/file-switch-store.ts';
import { SwitchWatcher } from '../../src/cluster/switch-watcher.ts';
import { formatEntry } from '../../src/core/switches.ts';
import type { LoadSource } from '../../src/load/load-source.ts';
import { createSwitchMetrics } from '../../src/telemetry/switch-metrics.ts';
import { ADMIN, review, scaleReview } from '../helpers/fixtures.ts';
import { policy, type TestGuard, testGuard } from '../helpers/guard.ts';
import { parseExposition } from '../helpers/telemetry.ts';

// The switches of the embedded default: a switch file written by the CLI (or by the guard
// copying an operator's annotation), read by the guard, applied to every agent request.

let dir: string;
let file: string;
let guard: TestGuard;
let watcher: SwitchWatcher;
let registry: Registry;

const quiet: CliIo = { out: () => undefined, err: () => undefined };
const cli = async (...args: string[]) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
};

function start(limits: Record<string, unknown>, options: { mode?: string; loadSource?: LoadSource } = {}): void {
  guard = testGuard({
    policies: policy('cap', { mode: options.mode ?? 'enforce', need: { onUnavailable: 'caps' }, limits }),
    ...(options.loadSource ? { loadSource: options.loadSource, deadlineMarginMs: 1_500 } : {}),
    switches: (clock, logger) => {
      const store = new FileSwitchStore(file);
      registry = new Registry();
      const metrics = createSwitchMetrics(registry, () => watcher.current(), () => clock.now().getTime());
      watcher = new SwitchWatcher({ store, clock, logger, metrics });
      return createSwitchGate({ watcher, store, clock, logger, metrics });
    },
  });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-switches-'));
  file = join(dir, 'switches.yaml');
});
afterEach(async () => {
  await guard.close();
  await rm(dir, { recursive: true, force: true });
});

describe('freeze', () => {
  it('under a clamp policy the mutating webhook stops clamping a frozen agent and lets the validating call deny', async () => {
    start({ perWorkload: 5 }, { mode: 'clamp' });
    expect((await guard.review('mutate', scaleReview('web', 5, 6))).patch).toBeDefined();

    expect((await cli('freeze', '--agent', 'agents:agent-1', '--reason', 'runaway', '--file', file)).code).toBe(0);
    await watcher.refresh();
    const mutated = await guard.review('mutate', scaleReview('web', 5, 6));
    expect(mutated.allowed).toBe(true);
    expect(mutated.patch).toBeUndefined();
    const validated = await guard.review('validate', scaleReview('web', 5, 6));
    expect(validated.allowed).toBe(false);
    expect(validated.auditAnnotations).toMatchObject({ limit: 'freeze' });
  });

  it('denies growth naming the switch, allows scaling down and deleting, and lifts with unfreeze', async () => {
    start({ perWorkload: 100 });
    expect((await guard.review('validate', scaleReview('web', 3, 5))).allowed).toBe(true);

    expect((await cli('freeze', '--agent', 'agents:agent-1', '--reason', 'runaway', '--file', file)).code).toBe(0);
    await watcher.refresh();
    const up = await guard.review('validate', scaleReview('web', 5, 6));
    expect(up.allowed).toBe(false);
    expect(up.status?.message).toContain(`switch freeze.agent.agents.agent-1 in file ${file}`);
    expect(up.status?.message).toContain('reason: runaway');
    expect(up.auditAnnotations).toMatchObject({ verdict: 'denied', limit: 'freeze', switch: 'freeze.agent.agents.agent-1' });
    expect(guard.lastAudit()).toMatchObject({ verdict: 'denied', limit: 'freeze', switch: 'freeze.agent.agents.agent-1' });
    // The mutating webhook never denies.
    expect((await guard.review('mutate', scaleReview('web', 5, 6))).allowed).toBe(true);

    expect((await guard.review('validate', scaleReview('web', 5, 2))).allowed).toBe(true);
    expect((await guard.review('validate', review('deployment-delete-agent'))).allowed).toBe(true);

    expect((await cli('unfreeze', '--agent', 'agents:agent-1', '--file', file)).out).toContain('removed');
    await watcher.refresh();
    expect((await guard.review('validate', scaleReview('web', 2, 6))).allowed).toBe(true);
  });

  it('applies at namespace and global scope, and not to agents outside the namespace', async () => {
    start({ perWorkload: 100 });
    await cli('freeze', '--namespace', 'agents', '--file', file);
    await watcher.refresh();
    const denied = await guard.review('validate', scaleReview('web', 1, 2));
    expect(denied.status?.message).toContain('growth of the agents of namespace agents is frozen by switch freeze.namespace.agents');
    const other = scaleReview('web', 1, 2);
    other.request.userInfo = { username: 'system:serviceaccount:agents-b:agent-9', groups: [] };
    guard.setPolicies(policy('cap', { mode: 'enforce', agents: { serviceAccounts: ['agents*:*'] }, need: { onUnavailable: 'caps' }, limits: { perWorkload: 100 } }));
    expect((await guard.review('validate', other)).allowed).toBe(true);

    await cli('unfreeze', '--namespace', 'agents', '--file', file);
    await cli('freeze', '--all', '--file', file);
    await watcher.refresh();
    const all = await guard.review('validate', other);
    expect(all.allowed).toBe(false);
    expect(all.status?.message).toContain('growth of every agent is frozen by switch freeze.all');
  });

  it("denies an agent removing or overwriting a freeze annotation on its ServiceAccount", async () => {
    start({ perWorkload: 100 });
    // Recorded: the agent removed the last annotation, so metadata.annotations is gone.
    const removed = await guard.review('validate', review('serviceaccount-annotate-agent'));
    expect(removed.allowed).toBe(false);
    expect(removed.status?.message).toContain('agents may not set, change or remove "replica-guard.io/freeze"');
    const overwrite = review('serviceaccount-annotate-agent', { annotations: { 'replica-guard.io/freeze': 'false' } });
    expect((await guard.review('validate', overwrite)).allowed).toBe(false);
    const setOwn = review('serviceaccount-annotate-agent', {
      annotations: { 'replica-guard.io/freeze': 'true' },
      unset: ['oldObject.metadata.annotations'],
    });
    expect((await guard.review('validate', setOwn)).allowed).toBe(false);
    // Other annotations stay the agent's own business.
    const unrelated = review('serviceaccount-annotate-agent', { annotations: { 'replica-guard.io/freeze': 'true', note: 'hi' } });
    expect((await guard.review('validate', unrelated)).allowed).toBe(true);
  });

  it("copies an operator's annotation into the switches; removing it does not unfreeze", async () => {
    start({ perWorkload: 100 });
    const dry = review('namespace-annotate-admin', { dryRun: true });
    expect((await guard.review('validate', dry)).allowed).toBe(true);
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);

    const annotated = await guard.review('validate', review('namespace-annotate-admin'));
    expect(annotated.allowed).toBe(true);
    expect(annotated.warnings?.[0]).toContain('replica-guard froze growth: switch freeze.namespace.agents');
    const stored = YAML.parse(await readFile(file, 'utf8')) as Record<string, string>;
    expect(JSON.parse(stored['freeze.namespace.agents'] ?? '{}')).toMatchObject({ by: 'admin', source: 'annotation' });
    // Applied at once in the replica that copied it, without waiting for the next read.
    expect((await guard.review('validate', scaleReview('web', 1, 2))).allowed).toBe(false);

    const unannotate = review('namespace-annotate-admin', { unset: ['object.metadata.annotations'] });
    unannotate.request.oldObject = review('namespace-annotate-admin').request.object;
    const lifted = await guard.review('validate', unannotate);
    expect(lifted.allowed).toBe(true);
    expect(lifted.warnings?.[0]).toContain('does not unfreeze');
    await watcher.refresh();
    expect((await guard.review('validate', scaleReview('web', 1, 2))).allowed).toBe(false);
  });

  it('survives the agent deleting and recreating its ServiceAccount', async () => {
    start({ perWorkload: 100 });
    const sa = review('serviceaccount-annotate-agent', { userInfo: ADMIN, annotations: { 'replica-guard.io/freeze': 'true' }, unset: ['oldObject.metadata.annotations'] });
    expect((await guard.review('validate', sa)).warnings?.[0]).toContain('freeze.agent.agents.agent-1');
    const del = review('serviceaccount-annotate-agent', { set: [['operation', 'DELETE'], ['object', null]] });
    del.request.oldObject = sa.request.object;
    expect((await guard.review('validate', del)).allowed).toBe(true);
    // The recreated account has no annotation; the freeze is keyed by namespace and name.
    await watcher.refresh();
    expect((await guard.review('validate', scaleReview('web', 1, 2))).allowed).toBe(false);
  });
});

describe('break-glass and exemptions', () => {
  it('break-glass turns an enforce denial into an audited allow, visible in the metrics', async () => {
    start({ perWorkload: 4 });
    expect((await guard.review('validate', scaleReview('web', 3, 10))).allowed).toBe(false);
    expect((await cli('break-glass', '--for', '1h', '--reason', 'incident 42', '--file', file)).code).toBe(0);
    await watcher.refresh();
    const answer = await guard.review('validate', scaleReview('web', 3, 10));
    expect(answer.allowed).toBe(true);
    expect(answer.warnings?.join('\n')).toContain('audit: policy cap would deny');
    expect(answer.auditAnnotations?.switch).toBe('break-glass');
    expect(guard.lastAudit()).toMatchObject({ verdict: 'allowed', switch: 'break-glass', to: 10 });
    const samples = parseExposition(await registry.metrics());
    expect(samples).toContainEqual({ name: 'replica_guard_switches_active', labels: { switch: 'break-glass' }, value: 1 });
    expect(samples).toContainEqual({ name: 'replica_guard_switch_decisions_total', labels: { switch: 'break-glass', verdict: 'allowed' }, value: 1 });

    // A freeze still wins over break-glass.
    await cli('freeze', '--agent', 'agents:agent-1', '--file', file);
    await watcher.refresh();
    expect((await guard.review('validate', scaleReview('web', 3, 11))).allowed).toBe(false);
    await cli('unfreeze', '--agent', 'agents:agent-1', '--file', file);
    await cli('break-glass', '--off', '--file', file);
    await watcher.refresh();
    expect((await guard.review('validate', scaleReview('web', 3, 12))).allowed).toBe(false);
  });

  it('an exemption of a workload applies until it expires by itself', async () => {
    start({ perWorkload: 4 });
    const until = guard.clock.now().getTime() + 60_000;
    await writeFile(file, YAML.stringify({ 'exempt.workload.agents.deployment.web': formatEntry({ until, by: 'alice' }) }));
    await watcher.refresh();
    const exempt = await guard.review('validate', scaleReview('web', 3, 10));
    expect(exempt.allowed).toBe(true);
    expect(exempt.auditAnnotations?.switch).toBe('exempt.workload.agents.deployment.web');
    // Another workload of the same agent is not exempt.
    expect((await guard.review('validate', scaleReview('api', 3, 10))).allowed).toBe(false);
    let samples = parseExposition(await registry.metrics());
    expect(samples).toContainEqual({ name: 'replica_guard_switches_active', labels: { switch: 'exempt-workload' }, value: 1 });

    guard.clock.advance(60_000);
    expect((await guard.review('validate', scaleReview('web', 3, 11))).allowed).toBe(false);
    samples = parseExposition(await registry.metrics());
    expect(samples).toContainEqual({ name: 'replica_guard_switches_active', labels: { switch: 'exempt-workload' }, value: 0 });
  });
});

describe('switches when the decision misses its deadline', () => {
  /** A need that never comes: the decision falls back at the deadline. */
  const hanging: LoadSource = { need: (_q, signal) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))) };

  it('a freeze denies even under an audit-only policy; break-glass lets an enforce policy through', async () => {
    start({ perWorkload: 100 }, { mode: 'audit', loadSource: hanging });
    expect((await guard.review('validate', scaleReview('web', 1, 2), 'timeout=2s')).allowed).toBe(true);
    await cli('freeze', '--all', '--file', file);
    await watcher.refresh();
    const frozen = await guard.review('validate', scaleReview('web', 1, 3), 'timeout=2s');
    expect(frozen.allowed).toBe(false);
    expect(frozen.status?.message).toContain('RG_ERR_DEADLINE');
    await guard.close();

    start({ perWorkload: 100 }, { loadSource: hanging });
    expect((await guard.review('validate', scaleReview('web', 1, 4), 'timeout=2s')).allowed).toBe(false);
    await cli('unfreeze', '--all', '--file', file);
    await cli('break-glass', '--for', '5m', '--file', file);
    await watcher.refresh();
    expect((await guard.review('validate', scaleReview('web', 1, 5), 'timeout=2s')).allowed).toBe(true);
  }, 15_000);
});

describe('switch commands', () => {
  it('answer --help with 0 and refuse a wrong command line with 2', async () => {
    for (const command of ['freeze', 'unfreeze', 'break-glass', 'exempt', 'switches']) {
      const help = await cli(command, '--help');
      expect(help.code).toBe(0);
      expect(help.out).toContain('--kubeconfig');
      expect(help.out).toContain('--context');
    }
    expect((await cli('freeze', '--file', file)).err).toContain('give exactly one of');
    expect((await cli('freeze', '--agent', 'agents', '--file', file)).code).toBe(2);
    expect((await cli('break-glass', '--file', file)).err).toContain('always expires');
    expect((await cli('exempt', '--workload', 'a/b', '--for', '1m', '--file', file)).code).toBe(2);
    expect((await cli('switches', '-o', 'xml', '--file', file)).code).toBe(2);
    expect((await cli('freeze', '--bogus')).code).toBe(2);
  });

  it('list the switches as a table, JSON or YAML; freezing twice changes nothing', async () => {
    await runCli(['freeze', '--agent', 'agents:agent-1', '--reason', 'runaway', '--by', 'alice', '--file', file], quiet);
    const again = await cli('freeze', '--agent', 'agents:agent-1', '--by', 'bob', '--file', file);
    expect(again.out).toContain('already set');
    await runCli(['exempt', '--agent', 'agents:agent-2', '--for', '10m', '--file', file], quiet);
    const table = await cli('switches', '--file', file);
    expect(table.out.split('\n')[0]).toMatch(/^SWITCH\s+KIND\s+BY\s+AT\s+UNTIL\s+EXPIRED\s+REASON$/);
    expect(table.out).toMatch(/freeze\.agent\.agents\.agent-1\s+freeze-agent\s+alice\s+.*false\s+runaway/);
    const json = JSON.parse((await cli('switches', '-o', 'json', '--file', file)).out) as { switch: string; kind: string }[];
    expect(json.map((r) => r.kind)).toEqual(['exempt-agent', 'freeze-agent']);
    const yaml = YAML.parse((await cli('switches', '-o', 'yaml', '--file', file)).out) as { by: string }[];
    expect(yaml.map((r) => r.by)).toContain('alice');
  });
});
