import { describe, expect, it } from 'vitest';
import type { Policy } from '../core/types.ts';
import { compileAgentMatcher, controllerIdentity, parseServiceAccount } from './agent-matcher.ts';

function policy(name: string, agents: Partial<Policy['agents']>, namespaces?: string[]): Policy {
  return {
    name,
    mode: 'enforce',
    agents: { serviceAccounts: [], users: [], groups: [], ...agents },
    namespaces,
    need: { onUnavailable: 'hold' },
    limits: {},
    source: { file: 'inline', document: 1 },
  };
}

const user = (username: string, groups: string[] = ['system:authenticated']) => ({ username, groups });

describe('agent matching', () => {
  it('matches service accounts as namespace:name globs and returns every matching policy', () => {
    const m = compileAgentMatcher([policy('a', { serviceAccounts: ['agents:*'] }), policy('b', { serviceAccounts: ['*:agent-1'] })]);
    const match = m.match(user('system:serviceaccount:agents:agent-1'));
    expect('agent' in match && match.policies.map((p) => p.name)).toEqual(['a', 'b']);
    expect('agent' in match && match.agent.serviceAccount).toEqual({ namespace: 'agents', name: 'agent-1' });
    expect(m.match(user('system:serviceaccount:web:frontend'))).toEqual({
      skip: 'no policy names system:serviceaccount:web:frontend',
    });
  });

  it("narrows service accounts by the policy's namespaces, not users or groups", () => {
    const m = compileAgentMatcher([
      policy('sa', { serviceAccounts: ['*:agent-*'] }, ['agents']),
      policy('grp', { groups: ['ai-team'] }, ['agents']),
    ]);
    expect('agent' in m.match(user('system:serviceaccount:agents:agent-1'))).toBe(true);
    expect('skip' in m.match(user('system:serviceaccount:other:agent-1'))).toBe(true);
    const viaGroup = m.match(user('carol', ['ai-team', 'system:authenticated']));
    expect('agent' in viaGroup && viaGroup.policies.map((p) => p.name)).toEqual(['grp']);
  });

  it('matches users by name', () => {
    const m = compileAgentMatcher([policy('u', { users: ['bot-*'] })]);
    const match = m.match(user('bot-7'));
    expect('agent' in match && match.agent).toEqual({ username: 'bot-7', serviceAccount: undefined, groups: ['system:authenticated'] });
    expect('skip' in m.match(user('alice'))).toBe(true);
  });

  it('never treats controllers as agents, whatever a glob says', () => {
    const m = compileAgentMatcher([policy('all', { serviceAccounts: ['*'], users: ['*'], groups: ['*'] })]);
    for (const name of [
      'system:serviceaccount:kube-system:horizontal-pod-autoscaler',
      'system:kube-controller-manager',
      'system:kube-scheduler',
      'system:node:worker-1',
    ]) {
      const match = m.match(user(name, ['system:serviceaccounts', 'system:authenticated']));
      expect('skip' in match && match.skip, name).toMatch(/never an agent/);
    }
    expect('agent' in m.match(user('system:serviceaccount:agents:agent-1'))).toBe(true);
    expect(controllerIdentity('admin')).toBeUndefined();
  });

  it('parses service account user names and nothing else', () => {
    expect(parseServiceAccount('system:serviceaccount:agents:agent-1')).toEqual({ namespace: 'agents', name: 'agent-1' });
    expect(parseServiceAccount('system:serviceaccount:agents:')).toBeUndefined();
    expect(parseServiceAccount('system:serviceaccount:nocolon')).toBeUndefined();
    expect(parseServiceAccount('admin')).toBeUndefined();
  });
});
