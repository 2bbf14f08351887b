import { describe, expect, it } from 'vitest';
import { at, MIN, small, T0 } from '../../../test/helpers/ledger-state-fixtures.ts';
import { enforceBounds } from './enforce-bounds.ts';
import { rateUsed } from './rate.ts';
import { type AgentLedgerState, emptyState } from './state.ts';

describe('enforceBounds', () => {
  it('cuts a state with larger collections (a newer guard) down to the bounds, newest kept', () => {
    const big: AgentLedgerState = {
      ...emptyState(),
      episodeKeys: Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, at: T0 + i })),
      reservations: Array.from({ length: 4 }, (_, i) => ({
        key: `r${i}`,
        workload: 'w',
        steady: 1,
        addedInstances: 1,
        at: T0,
        expiresAt: T0 + MIN,
      })),
    };
    const cut = enforceBounds(big, small({ episodeKeys: 2, reservations: 1 }));
    expect(cut.episodeKeys.map((e) => e.key)).toEqual(['k3', 'k4']);
    expect(cut.evictions.episodeKeys).toBe(3);
    expect(cut.reservations.map((r) => r.key)).toEqual(['r3']);
    expect(rateUsed(cut, 5 * MIN, at(1))).toBe(4);
    expect(enforceBounds(cut, small({ episodeKeys: 2, reservations: 1 }))).toBe(cut);
  });
});
