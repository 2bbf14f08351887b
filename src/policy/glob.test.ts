import { describe, expect, it } from 'vitest';
import { compileGlob, isLiteralGlob } from './glob.ts';

describe('compileGlob', () => {
  it('matches any run of characters with *, colons included', () => {
    const g = compileGlob('agents:*');
    expect(g.test('agents:agent-1')).toBe(true);
    expect(g.test('agents:')).toBe(true);
    expect(g.test('agents-b:agent-1')).toBe(false);
    expect(compileGlob('*').test('a:b:c')).toBe(true);
  });
  it('matches one character with ?', () => {
    const g = compileGlob('agent-?');
    expect(g.test('agent-1')).toBe(true);
    expect(g.test('agent-10')).toBe(false);
  });
  it('treats regular expression characters literally', () => {
    const g = compileGlob('a.b+(c)');
    expect(g.test('a.b+(c)')).toBe(true);
    expect(g.test('axbb(c)')).toBe(false);
  });
  it('tells literal patterns from wildcards', () => {
    expect(isLiteralGlob('agents:agent-1')).toBe(true);
    expect(isLiteralGlob('agents:*')).toBe(false);
  });
});
