import { describe, expect, it } from 'vitest';
import { at, HOUR, key, limits, res } from '../../../test/helpers/ledger-state-fixtures.ts';
import { recordEpisodeKey } from './episode-keys.ts';
import { expire } from './expire.ts';
import { holdRequested } from './held-requests.ts';
import { addProvenance } from './provenance.ts';
import { reserve } from './reservations.ts';
import { emptyState } from './state.ts';

describe('expire', () => {
  it('returns the same state when nothing is due, and drops what is', () => {
    let s = holdRequested(emptyState(), key(1), 5, at(0), limits);
    s = recordEpisodeKey(s, key(1), at(0), limits).state;
    s = reserve(s, res(key(1)), at(0), limits);
    s = addProvenance(s, 'uid-a', at(0), limits);
    expect(expire(s, at(1000), limits)).toBe(s);
    const later = expire(s, at(HOUR + 1), limits);
    expect(later.held).toEqual([]);
    expect(later.episodeKeys).toEqual([]);
    expect(later.reservations).toEqual([]);
    expect(later.provenance).toHaveLength(1);
  });
});
