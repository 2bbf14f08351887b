import { describe, expect, it } from 'vitest';
import { at, HOUR } from '../../../test/helpers/ledger-state-fixtures.ts';
import { lossesWithin } from './losses.ts';
import { rateUsed } from './rate.ts';
import { reservedInstances } from './reservations.ts';
import { emptyState, isEmptyState, LEDGER_STATE_VERSION } from './state.ts';

describe('emptyState', () => {
  it('starts at version 1 with nothing in it', () => {
    const s = emptyState();
    expect(s.version).toBe(1);
    expect(LEDGER_STATE_VERSION).toBe(1);
    expect(isEmptyState(s)).toBe(true);
    expect(rateUsed(s, HOUR, at(0))).toBe(0);
    expect(reservedInstances(s)).toBe(0);
    expect(lossesWithin(s, HOUR, at(0))).toBe(0);
  });
});
