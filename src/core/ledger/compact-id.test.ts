import { describe, expect, it } from 'vitest';
import { at, key, limits } from '../../../test/helpers/ledger-state-fixtures.ts';
import { compactId } from './compact-id.ts';
import { recordEpisodeKey } from './episode-keys.ts';
import { emptyState } from './state.ts';

describe('compactId', () => {
  it('keeps Kubernetes UIDs readable and hashes anything long or unsafe to a fixed size', () => {
    expect(compactId('8d3c5a2e-2b1f-4c7a-9e0d-0b6a1f2c3d4e')).toBe('8d3c5a2e-2b1f-4c7a-9e0d-0b6a1f2c3d4e');
    const long = compactId(key(5));
    expect(long).toMatch(/^#[A-Za-z0-9_-]{22}$/);
    expect(compactId(key(5))).toBe(long);
    expect(compactId(key(6))).not.toBe(long);
    expect(compactId('"'.repeat(10))).toMatch(/^#/);
    expect(compactId('a'.repeat(41))).toMatch(/^#/);
  });

  it('returns a compacted id unchanged, so that a key hashed once works everywhere', () => {
    const once = compactId(key(7));
    expect(compactId(once)).toBe(once);
    const s = recordEpisodeKey(emptyState(), once, at(0), limits).state;
    expect(recordEpisodeKey(s, key(7), at(1), limits).isNew).toBe(false);
    // Something that merely starts with '#' but is not a hash's shape is hashed.
    expect(compactId('#short')).not.toBe('#short');
    expect(compactId(`#${'a'.repeat(23)}`)).toMatch(/^#[A-Za-z0-9_-]{22}$/);
  });
});
