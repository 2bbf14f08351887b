import { describe, expect, it } from 'vitest';
import { at, key, limits } from '../../test/helpers/ledger-state-fixtures.ts';
import { emptyState, hasEpisodeKey, holdRequested, hasProvenance, rateUsed, reservedInstances } from '../core/ledger-state.ts';
import { episodeSums } from '../core/risk.ts';
import { applyEpisodeRecord, type EpisodeRecord, type GrowthSpend } from './episode-record.ts';

const sums = episodeSums({ from: 2, requested: 5, admitted: 5, need: 3, measured: true, fallback: false });
const spend: GrowthSpend = {
  reservation: { key: key(1), workload: 'uid-w', steady: 5, addedInstances: 3 },
  uid: 'uid-w',
  justificationHash: 'ab12',
  confirmAtOnce: false,
};
const growth: EpisodeRecord = { key: key(1), sumsFor: () => sums, observed: { instances: 5, workload: 'w', need: 3 }, growth: spend, at: at(0) };

describe('applyEpisodeRecord', () => {
  it('writes the episode, the reservation, the provenance and the justification of an admitted growth', () => {
    const { state, isNew } = applyEpisodeRecord(emptyState(), growth, limits);
    expect(isNew).toBe(true);
    expect(hasEpisodeKey(state, key(1), at(0), limits)).toBe(true);
    expect(reservedInstances(state, at(0))).toBe(3);
    expect(hasProvenance(state, 'uid-w')).toBe(true);
    expect(state.justification?.hash).toBe('ab12');
    expect(state.family?.instances).toBe(5);
  });

  it('applied twice (a retry, or the same growth written by two replicas) changes nothing the second time', () => {
    const once = applyEpisodeRecord(emptyState(), growth, limits).state;
    const twice = applyEpisodeRecord(once, growth, limits);
    expect(twice.isNew).toBe(false);
    expect(twice.state).toEqual(once);
  });

  it("writes only a denial's episode: a denial spends nothing", () => {
    const { state, isNew } = applyEpisodeRecord(emptyState(), { ...growth, growth: undefined }, limits);
    expect(isNew).toBe(true);
    expect(rateUsed(state, 60_000, at(0))).toBe(0);
    expect(state.provenance).toEqual([]);
    expect(state.justification).toBeUndefined();
  });

  it('confirms at once when the view is built from the requests themselves', () => {
    const confirmed = applyEpisodeRecord(emptyState(), { ...growth, growth: { ...spend, confirmAtOnce: true } }, limits).state;
    expect(confirmed.reservations).toEqual([]);
    expect(rateUsed(confirmed, 60_000, at(0))).toBe(3);
  });

  it('reads the count the mutating call held under its key where it is applied, and computes its sums from it', () => {
    const held = holdRequested(emptyState(), key(1), 9, at(0), limits);
    const seen: (number | undefined)[] = [];
    const out = applyEpisodeRecord(held, { ...growth, sumsFor: (h) => (seen.push(h), sums) }, limits);
    expect(out.held).toBe(9);
    expect(seen).toEqual([9]);
    expect(applyEpisodeRecord(emptyState(), growth, limits).held).toBeUndefined();
  });
});
