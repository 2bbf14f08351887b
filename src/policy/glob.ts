/**
 * A compiled glob: `*` matches any run of characters (":" included), `?` exactly one.
 * Everything else matches itself. Compiled once per policy load, never per request.
 */
export interface Glob {
  readonly source: string;
  test(value: string): boolean;
}

const REGEX_SPECIALS = /[.+^${}()|[\]\\]/g;

/** Compiles a glob into an anchored regular expression. */
export function compileGlob(pattern: string): Glob {
  const body = pattern.replace(REGEX_SPECIALS, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  const regex = new RegExp(`^${body}$`, 's');
  return { source: pattern, test: (value) => regex.test(value) };
}

/** True when the pattern has no wildcard, so it matches exactly one value. */
export function isLiteralGlob(pattern: string): boolean {
  return !pattern.includes('*') && !pattern.includes('?');
}
