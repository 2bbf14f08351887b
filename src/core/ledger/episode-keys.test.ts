import { describe, expect, it } from 'vitest';
import { at, HOUR, key, limits, small, T0 } from '../../../test/helpers/ledger-state-fixtures.ts';
import { compactId } from './compact-id.ts';
import { hasEpisodeKey, recordEpisodeKey } from './episode-keys.ts';
import { emptyState } from './state.ts';

describe('episode keys', () => {
  it('records a key once within the window and again after it', () => {
    const first = recordEpisodeKey(emptyState(), key(1), at(0), limits);
    expect(first.isNew).toBe(true);
    const dup = recordEpisodeKey(first.state, key(1), at(HOUR - 1), limits);
    expect(dup).toEqual({ state: first.state, isNew: false });
    expect(dup.state).toBe(first.state);
    expect(hasEpisodeKey(first.state, key(1), at(10), limits)).toBe(true);
    expect(hasEpisodeKey(first.state, key(1), at(HOUR + 1), limits)).toBe(false);
    const later = recordEpisodeKey(first.state, key(1), at(HOUR + 1), limits);
    expect(later.isNew).toBe(true);
    expect(later.state.episodeKeys).toEqual([{ key: compactId(key(1)), at: T0 + HOUR + 1 }]);
  });

  it('keeps a bounded set and counts the keys evicted before their window ended', () => {
    const l = small({ episodeKeys: 3 });
    let s = emptyState();
    for (let i = 0; i < 5; i++) s = recordEpisodeKey(s, key(i), at(i), l).state;
    expect(s.episodeKeys).toHaveLength(3);
    expect(s.evictions.episodeKeys).toBe(2);
    // An evicted key comes back as new: that is the cost the eviction count makes visible.
    expect(recordEpisodeKey(s, key(0), at(10), l).isNew).toBe(true);
    expect(recordEpisodeKey(s, key(4), at(10), l).isNew).toBe(false);
  });
});
