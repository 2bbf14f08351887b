import type { WorkloadRef } from '../core/types.ts';

/** The placeholders a policy's query may use. */
export const PLACEHOLDERS = ['namespace', 'name', 'kind'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

/**
 * Escapes a value for a PromQL string literal in double or single quotes. PromQL reads
 * string literals with Go's escapes, so a backslash and both quote characters are escaped
 * and control characters written as `\u00XX`; a value can then never end the literal it
 * sits in and add matchers or operators of its own (`web"} or vector(1e9) or x{a="`).
 */
export function escapePromqlString(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === "'") out += "\\'";
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

/** A rendered query, or why the template cannot be rendered for this workload. */
export type RenderedQuery = { readonly query: string } | { readonly error: string };

/**
 * Fills `{{namespace}}`, `{{name}}` and `{{kind}}` with the workload's, escaped for a
 * PromQL string literal: the placeholders belong inside quotes (`app="{{name}}"`).
 * A raw string in backquotes cannot escape anything, so a value holding a backquote is
 * refused (Kubernetes names never do; a request claiming one is not trusted with a query).
 * An unknown placeholder is an error rather than left in place, since Prometheus would
 * read `{{...}}` as a syntax error far from the policy that wrote it.
 */
export function renderQuery(template: string, ref: WorkloadRef): RenderedQuery {
  const values: Record<Placeholder, string> = { namespace: ref.namespace, name: ref.name, kind: ref.kind };
  for (const [key, value] of Object.entries(values)) {
    if (value.includes('`')) return { error: `the workload's ${key} holds a backquote; it is not put into a PromQL query` };
  }
  const unknown: string[] = [];
  const query = template.replace(PLACEHOLDER, (whole, rawName: string) => {
    if (!isPlaceholder(rawName)) {
      unknown.push(whole);
      return whole;
    }
    return escapePromqlString(values[rawName]);
  });
  if (unknown.length > 0) {
    return { error: `unknown placeholder ${unknown.join(', ')} in need.prometheus.query (known: {{namespace}}, {{name}}, {{kind}})` };
  }
  return { query };
}

function isPlaceholder(name: string): name is Placeholder {
  return (PLACEHOLDERS as readonly string[]).includes(name);
}
