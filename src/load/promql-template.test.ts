import { describe, expect, it } from 'vitest';
import type { WorkloadRef } from '../core/types.ts';
import { escapePromqlString, renderQuery } from './promql-template.ts';

const ref = (name: string, namespace = 'shop', kind = 'Deployment'): WorkloadRef => ({ group: 'apps', kind, namespace, name });

const rendered = (template: string, r: WorkloadRef): string => {
  const out = renderQuery(template, r);
  if ('error' in out) throw new Error(out.error);
  return out.query;
};

/**
 * Reads a double-quoted PromQL string literal starting at `start` the way PromQL's lexer
 * does (Go escapes), returning its value and where it ends: enough to prove a templated
 * value stays inside its literal.
 */
function readLiteral(text: string, start: number): { value: string; end: number } {
  if (text[start] !== '"') throw new Error(`no literal at ${start}`);
  let value = '';
  for (let i = start + 1; i < text.length; i += 1) {
    const ch = text[i];
    if (ch === '"') return { value, end: i };
    if (ch === '\n') throw new Error('newline inside a literal');
    if (ch !== '\\') {
      value += ch;
      continue;
    }
    i += 1;
    const esc = text[i];
    const simple: Record<string, string> = { '\\': '\\', '"': '"', "'": "'", n: '\n', r: '\r', t: '\t' };
    if (esc !== undefined && simple[esc] !== undefined) value += simple[esc];
    else if (esc === 'u') {
      value += String.fromCharCode(Number.parseInt(text.slice(i + 1, i + 5), 16));
      i += 4;
    } else throw new Error(`unknown escape \\${esc}`);
  }
  throw new Error('unterminated literal');
}

describe('renderQuery', () => {
  it('fills namespace, name and kind, with or without spaces inside the braces', () => {
    expect(rendered('sum(rate(x{namespace="{{namespace}}", app="{{ name }}", k="{{kind}}"}[2m]))', ref('web'))).toBe(
      'sum(rate(x{namespace="shop", app="web", k="Deployment"}[2m]))',
    );
  });

  it('fills every occurrence', () => {
    expect(rendered('a{n="{{name}}"} / b{n="{{name}}"}', ref('web'))).toBe('a{n="web"} / b{n="web"}');
  });

  it('keeps a hostile name inside its string literal', () => {
    const hostile = 'web"} or vector(1000) or x{a="\\';
    const template = 'sum(x{app="{{name}}"})';
    const query = rendered(template, ref(hostile));
    const start = query.indexOf('"');
    const literal = readLiteral(query, start);
    expect(literal.value).toBe(hostile);
    // Nothing after the literal but what the template wrote.
    expect(query.slice(literal.end)).toBe('"})');
    expect(query).not.toContain('" or vector');
  });

  it('escapes single quotes, so a single-quoted literal holds too', () => {
    expect(rendered("x{app='{{name}}'}", ref("we'b"))).toBe("x{app='we\\'b'}");
  });

  it('writes control characters as escapes, never raw', () => {
    const query = rendered('x{app="{{name}}"}', ref('a\nb\u0001c\td'));
    expect(query).toBe('x{app="a\\nb\\u0001c\\td"}');
    expect(readLiteral(query, query.indexOf('"')).value).toBe('a\nb\u0001c\td');
  });

  it('refuses a value holding a backquote: a raw string cannot escape it', () => {
    const out = renderQuery('x{app=`{{name}}`}', ref('a`} or vector(1) #'));
    expect(out).toEqual({ error: expect.stringContaining('backquote') });
  });

  it('refuses an unknown placeholder rather than sending it to Prometheus', () => {
    const out = renderQuery('x{app="{{name}}", pod="{{pod}}"}', ref('web'));
    expect(out).toEqual({ error: expect.stringContaining('{{pod}}') });
  });

  it('leaves a template without placeholders as it is', () => {
    expect(rendered('sum(up)', ref('web'))).toBe('sum(up)');
  });
});

describe('escapePromqlString', () => {
  it('escapes backslashes first, so an escaped quote cannot be un-escaped', () => {
    expect(escapePromqlString('\\"')).toBe('\\\\\\"');
  });

  it('leaves ordinary names alone, unicode included', () => {
    expect(escapePromqlString('web-1.prod')).toBe('web-1.prod');
    expect(escapePromqlString('café')).toBe('café');
  });
});
