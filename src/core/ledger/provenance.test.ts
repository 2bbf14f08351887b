import { describe, expect, it } from 'vitest';
import { at, HOUR, limits, small } from '../../../test/helpers/ledger-state-fixtures.ts';
import { expire } from './expire.ts';
import { addProvenance, forgetGoneProvenance, forgetProvenance, hasProvenance } from './provenance.ts';
import { emptyState } from './state.ts';

describe('provenance', () => {
  it('adds, refreshes to the newest, forgets, and evicts the least recently seen past the bound', () => {
    const l = small({ provenance: 2 });
    let s = addProvenance(emptyState(), 'uid-a', at(0), l);
    expect(addProvenance(s, 'uid-a', at(0), l)).toBe(s);
    s = addProvenance(s, 'uid-b', at(1), l);
    s = addProvenance(s, 'uid-a', at(2), l); // seen again: now the newest
    expect(s.provenance.map((p) => p.uid)).toEqual(['uid-b', 'uid-a']);
    s = addProvenance(s, 'uid-c', at(3), l);
    expect(s.provenance.map((p) => p.uid)).toEqual(['uid-a', 'uid-c']);
    expect(s.evictions.provenance).toBe(1);
    expect(hasProvenance(s, 'uid-a')).toBe(true);
    expect(hasProvenance(s, 'uid-b')).toBe(false);
    const gone = forgetProvenance(s, 'uid-a');
    expect(hasProvenance(gone, 'uid-a')).toBe(false);
    expect(forgetProvenance(gone, 'uid-a')).toBe(gone);
  });

  it('forgets every workload the view saw deleted, so that dead entries never evict live ones', () => {
    const l = small({ provenance: 3 });
    let s = emptyState();
    for (const uid of ['live', 'dead-1', 'dead-2']) s = addProvenance(s, uid, at(0), l);
    const dead = new Set(['dead-1', 'dead-2']);
    const pruned = forgetGoneProvenance(s, (uid) => dead.has(uid));
    expect(pruned.provenance.map((p) => p.uid)).toEqual(['live']);
    expect(forgetGoneProvenance(pruned, (uid) => dead.has(uid))).toBe(pruned);
    // Two new workloads now fit beside the live one without evicting it.
    let next = addProvenance(pruned, 'new-1', at(1), l);
    next = addProvenance(next, 'new-2', at(2), l);
    expect(hasProvenance(next, 'live')).toBe(true);
    expect(next.evictions.provenance).toBe(0);
  });

  it('does not expire with time: a workload stays in the family while it exists', () => {
    const s = addProvenance(emptyState(), 'uid-a', at(0), limits);
    expect(hasProvenance(expire(s, at(100 * HOUR), limits), 'uid-a')).toBe(true);
  });
});
