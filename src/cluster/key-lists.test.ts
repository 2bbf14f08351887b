import { describe, expect, it } from 'vitest';
import { KeyLists } from './key-lists.ts';

describe('KeyLists', () => {
  it('keeps each member once per key, in insertion order, and forgets a key with no members', () => {
    const lists = new KeyLists();
    lists.add('rs', 'a');
    lists.add('rs', 'b');
    lists.add('rs', 'a');
    lists.add('sts', 'c');
    expect(lists.get('rs')).toEqual(['a', 'b']);
    lists.remove('rs', 'a');
    lists.remove('rs', 'zzz');
    lists.remove('none', 'a');
    expect(lists.get('rs')).toEqual(['b']);
    lists.remove('rs', 'b');
    expect(lists.get('rs')).toEqual([]);
    expect(lists.size).toBe(1);
  });

  it('never changes a list a caller is iterating', () => {
    const lists = new KeyLists();
    lists.add('rs', 'a');
    lists.add('rs', 'b');
    const seen: string[] = [];
    for (const member of lists.get('rs')) {
      seen.push(member);
      lists.remove('rs', member);
      lists.add('rs', `${member}2`);
    }
    expect(seen).toEqual(['a', 'b']);
    expect(lists.get('rs')).toEqual(['a2', 'b2']);
  });

  it('keeps the same behaviour for an owner with thousands of members', () => {
    const lists = new KeyLists();
    for (let i = 0; i < 5_000; i++) lists.add('job', `pod-${i}`);
    lists.add('job', 'pod-7');
    expect(lists.get('job')).toHaveLength(5_000);
    expect(lists.get('job')[0]).toBe('pod-0');
    const seen: string[] = [];
    for (const member of lists.get('job')) {
      seen.push(member);
      lists.remove('job', member);
    }
    expect(seen).toHaveLength(5_000);
    expect(lists.get('job')).toEqual([]);
    expect(lists.size).toBe(0);
  });
});
