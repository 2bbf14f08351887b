import { describe, expect, it } from 'vitest';
import {
  activeCounts,
  applicableSwitches,
  describeFreeze,
  exemptionKey,
  formatEntry,
  freezeKey,
  parseAgentRef,
  parseSwitches,
} from './switches.ts';
import type { AgentIdentity, WorkloadRef } from './types.ts';

const agent: AgentIdentity = { username: 'system:serviceaccount:agents:agent-1', serviceAccount: { namespace: 'agents', name: 'agent-1' } };
const user: AgentIdentity = { username: 'bob' };
const web: WorkloadRef = { group: 'apps', kind: 'Deployment', namespace: 'agents', name: 'web' };
const NOW = Date.parse('2026-12-05T08:00:00Z');

describe('switch keys', () => {
  it('name each scope, and refuse names Kubernetes would not accept', () => {
    expect(freezeKey({ type: 'all' })).toBe('freeze.all');
    expect(freezeKey({ type: 'namespace', namespace: 'agents' })).toBe('freeze.namespace.agents');
    expect(freezeKey({ type: 'agent', namespace: 'agents', name: 'agent.1' })).toBe('freeze.agent.agents.agent.1');
    expect(exemptionKey({ type: 'workload', namespace: 'agents', kind: 'StatefulSet', name: 'db' })).toBe('exempt.workload.agents.statefulset.db');
    expect(() => freezeKey({ type: 'namespace', namespace: 'a.b' })).toThrow(/not a valid namespace/);
    expect(() => freezeKey({ type: 'agent', namespace: 'agents', name: 'Agent' })).toThrow(/not a valid name/);
    expect(parseAgentRef('agents:agent-1')).toEqual({ namespace: 'agents', name: 'agent-1' });
    expect(() => parseAgentRef('agents/agent-1')).toThrow(/NAMESPACE:NAME/);
  });

  it('describe a freeze in words', () => {
    expect(describeFreeze('freeze.agent.agents.agent.1')).toBe('agent agents:agent.1');
    expect(describeFreeze('freeze.namespace.agents')).toBe('the agents of namespace agents');
    expect(describeFreeze('freeze.all')).toBe('every agent');
  });
});

describe('parseSwitches', () => {
  it('reads entries written by formatEntry and keeps a hand-written freeze that is not JSON', () => {
    const until = Date.parse('2026-12-05T09:00:00Z');
    const { switches, problems } = parseSwitches({
      'freeze.agent.agents.agent-1': formatEntry({ by: 'alice', reason: 'runaway', source: 'cli' }),
      'freeze.namespace.agents': 'stop them',
      'exempt.agent.agents.agent-2': formatEntry({ until }),
    });
    expect(problems).toEqual([]);
    expect(switches.entries.get('freeze.agent.agents.agent-1')).toMatchObject({ by: 'alice', reason: 'runaway', source: 'cli' });
    expect(switches.entries.get('freeze.namespace.agents')).toEqual({ reason: 'stop them' });
    expect(switches.entries.get('exempt.agent.agents.agent-2')?.until).toBe(until);
  });

  it('ignores unknown keys and exemptions without an expiry, and treats an unreadable expiry as passed', () => {
    const { switches, problems } = parseSwitches({
      'ledger-something': 'x',
      'exempt.agent.agents.agent-2': '{}',
      'exempt.agent.agents.agent-3': '{"until":"soon"}',
    });
    expect(problems).toEqual([
      'exempt.agent.agents.agent-2: an exemption needs "until" (an RFC 3339 time); ignored',
      'ledger-something: not a switch key; ignored',
    ]);
    expect(switches.entries.get('exempt.agent.agents.agent-3')?.until).toBe(0);
    expect(applicableSwitches(switches, { username: 'system:serviceaccount:agents:agent-3', serviceAccount: { namespace: 'agents', name: 'agent-3' } }, web, NOW).exemption).toBeUndefined();
  });
});

describe('applicableSwitches', () => {
  const on = (data: Record<string, string>, who = agent, ref = web) => applicableSwitches(parseSwitches(data).switches, who, ref, NOW);

  it('finds the narrowest freeze of a service account, and only a global one for a user', () => {
    const data = { 'freeze.all': '{}', 'freeze.namespace.agents': '{}', 'freeze.agent.agents.agent-1': '{}' };
    expect(on(data).freeze?.key).toBe('freeze.agent.agents.agent-1');
    expect(on({ 'freeze.namespace.agents': '{}' }).freeze?.key).toBe('freeze.namespace.agents');
    expect(on({ 'freeze.namespace.other': '{}', 'freeze.agent.agents.agent-2': '{}' }).freeze).toBeUndefined();
    expect(on({ 'freeze.namespace.agents': '{}' }, user).freeze).toBeUndefined();
    expect(on({ 'freeze.all': '{}' }, user).freeze?.key).toBe('freeze.all');
  });

  it('applies break-glass and exemptions only until they expire', () => {
    const later = formatEntry({ until: NOW + 60_000 });
    const past = formatEntry({ until: NOW });
    expect(on({ 'break-glass': later }).breakGlass?.key).toBe('break-glass');
    expect(on({ 'break-glass': past }).breakGlass).toBeUndefined();
    expect(on({ 'exempt.workload.agents.deployment.web': later }).exemption?.key).toBe('exempt.workload.agents.deployment.web');
    expect(on({ 'exempt.workload.agents.deployment.api': later }).exemption).toBeUndefined();
    expect(on({ 'exempt.agent.agents.agent-1': past }).exemption).toBeUndefined();
  });

  it('counts the switches in force by kind', () => {
    const { switches } = parseSwitches({
      'freeze.all': '{}',
      'break-glass': formatEntry({ until: NOW - 1 }),
      'exempt.agent.agents.agent-1': formatEntry({ until: NOW + 1 }),
    });
    expect(activeCounts(switches, NOW)).toEqual({
      'freeze-all': 1,
      'freeze-namespace': 0,
      'freeze-agent': 0,
      'break-glass': 0,
      'exempt-agent': 1,
      'exempt-workload': 0,
    });
  });
});
