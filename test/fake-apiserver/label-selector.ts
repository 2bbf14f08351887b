/**
 * The `labelSelector` query parameter as the apiserver (and metrics-server, which uses the
 * same parser) reads it: comma-separated requirements, all of which must hold —
 * `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not
 * exist). A `notin` or `!=` holds for an object without the key, as in the real parser.
 * Only what the fake needs: no validation of key and value syntax beyond the shape.
 */

type Requirement = (labels: Readonly<Record<string, string>>) => boolean;

/** Splits on commas outside parentheses (`a in (x,y),b=c` is two requirements). */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const ch = selector[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

const SET = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^()]*)\)$/;
const EQUALITY = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/;
const EXISTS = /^(!?)([^\s!=(),]+)$/;

function parseRequirement(text: string): Requirement | undefined {
  const set = SET.exec(text);
  if (set) {
    const [, key = '', op, list = ''] = set;
    const values = new Set(list.split(',').map((v) => v.trim()));
    // The real parser refuses an empty set: `k in ()` is a 400, not a selector matching nothing.
    if (values.has('')) return undefined;
    return op === 'in'
      ? (labels) => Object.hasOwn(labels, key) && values.has(labels[key] ?? '')
      : (labels) => !Object.hasOwn(labels, key) || !values.has(labels[key] ?? '');
  }
  const equality = EQUALITY.exec(text);
  if (equality) {
    const [, key = '', op, value = ''] = equality;
    const valueOf = (labels: Readonly<Record<string, string>>) => (Object.hasOwn(labels, key) ? labels[key] : undefined);
    return op === '!=' ? (labels) => valueOf(labels) !== value : (labels) => valueOf(labels) === value;
  }
  const exists = EXISTS.exec(text);
  if (exists) {
    const [, not, key = ''] = exists;
    return not ? (labels) => !Object.hasOwn(labels, key) : (labels) => Object.hasOwn(labels, key);
  }
  return undefined;
}

/** A matcher for the selector; undefined when it cannot be parsed (the apiserver answers 400). */
export function compileLabelSelector(selector: string): ((labels: Readonly<Record<string, string>>) => boolean) | undefined {
  const requirements: Requirement[] = [];
  for (const part of splitRequirements(selector)) {
    const requirement = parseRequirement(part);
    if (requirement === undefined) return undefined;
    requirements.push(requirement);
  }
  return (labels) => requirements.every((r) => r(labels));
}
