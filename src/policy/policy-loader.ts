import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import type { Document, YAMLError } from 'yaml';
import type { z } from 'zod';
import type { Limits, Policy } from '../core/types.ts';
import { compileGlob, isLiteralGlob } from './glob.ts';
import { durationToMs, POLICY_API_VERSION, POLICY_KIND, policyDocumentSchema } from './policy-schema.ts';
import type { PolicyDocument, PolicyLimits } from './policy-schema.ts';

/** One thing wrong (error) or suspicious (warning) in a policy file. */
export interface PolicyProblem {
  readonly severity: 'error' | 'warning';
  /** The file as the user named it (or as found in the directory). */
  readonly file: string;
  /** 1-based index of the YAML document in the file; null for problems of the whole file. */
  readonly document: number | null;
  /** The field as a user writes it (`spec.agents.serviceAccounts[1]`); empty for the whole document. */
  readonly path: string;
  /** 1-based line of the offending node, when known. */
  readonly line?: number;
  /** 1-based column, given for YAML syntax errors where the exact spot matters. */
  readonly column?: number;
  readonly message: string;
}

/** The outcome of reading a set of policy files: what loaded, and what is wrong. */
export interface PolicySetLoad {
  /** Every valid policy document, in file order then document order. */
  readonly policies: Policy[];
  readonly problems: PolicyProblem[];
  /** The files read, in the order read. */
  readonly files: string[];
  /** sha256 over file names and contents, so a watcher can recognise a no-op event. */
  readonly digest: string;
}

/** A loaded policy with the line of its name, kept to point at both sides of a duplicate. */
interface Entry {
  readonly policy: Policy;
  readonly nameLine: number | undefined;
}

interface FileParse {
  readonly entries: Entry[];
  readonly problems: PolicyProblem[];
}

type PathSegment = string | number;

/**
 * Parses the text of one policy file (several YAML documents allowed) into policies and
 * problems. Never throws: anything wrong with the text becomes a problem. Duplicate names
 * within this file are reported; across files, {@link loadPolicyPaths} does it.
 */
export function parsePolicyText(text: string, file: string): { policies: Policy[]; problems: PolicyProblem[] } {
  const parsed = parseFile(text, file);
  const problems = [...parsed.problems, ...duplicateNameProblems(parsed.entries)];
  return { policies: parsed.entries.map((e) => e.policy), problems: sortProblems(problems, [file]) };
}

/**
 * Formats a problem on one line, e.g.
 * `policies/x.yaml: document 2 (line 14): spec.mode: mode must be one of enforce, clamp, audit`.
 * Warnings carry `warning:` before the field so they are not mistaken for errors.
 */
export function formatProblem(p: PolicyProblem): string {
  let where = p.file;
  if (p.document !== null) where += `: document ${p.document}`;
  if (p.line !== undefined) where += p.column !== undefined ? ` (line ${p.line}, column ${p.column})` : ` (line ${p.line})`;
  const severity = p.severity === 'warning' ? 'warning: ' : '';
  const field = p.path === '' ? '' : `${p.path}: `;
  return `${where}: ${severity}${field}${p.message}`;
}

/**
 * Loads every `*.yaml` / `*.yml` file directly inside `dir`, sorted by name, following
 * symlinks and skipping names that start with `.` (a mounted ConfigMap keeps its real
 * files in `..<timestamp>` directories behind a `..data` symlink). Never throws: a missing
 * directory or an unreadable file becomes an error problem.
 */
export async function loadPolicyDirectory(dir: string): Promise<PolicySetLoad> {
  const listing = await listPolicyDirectory(dir);
  return loadFiles(listing.files, listing.problems);
}

/**
 * Loads policy files and directories given by the user (the CLI): a directory as in
 * {@link loadPolicyDirectory}, a file whatever its extension. Never throws.
 */
export async function loadPolicyPaths(paths: readonly string[]): Promise<PolicySetLoad> {
  const files: string[] = [];
  const problems: PolicyProblem[] = [];
  for (const path of paths) {
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(path)).isDirectory();
    } catch (error) {
      problems.push(fileProblem(path, `cannot read: ${describeFsError(error)}`));
      continue;
    }
    if (isDirectory) {
      const listing = await listPolicyDirectory(path);
      files.push(...listing.files);
      problems.push(...listing.problems);
    } else {
      files.push(path);
    }
  }
  // Naming a file and its directory, or a file twice, must not report every policy as a duplicate.
  return loadFiles([...new Set(files)], problems);
}

async function listPolicyDirectory(dir: string): Promise<{ files: string[]; problems: PolicyProblem[] }> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    return { files: [], problems: [fileProblem(dir, `cannot read the policy directory: ${describeFsError(error)}`)] };
  }
  const candidates = names.filter((n) => !n.startsWith('.') && /\.ya?ml$/i.test(n)).sort();
  const files: string[] = [];
  const problems: PolicyProblem[] = [];
  for (const name of candidates) {
    const path = join(dir, name);
    try {
      // stat, not the dirent type: a ConfigMap mount presents every file as a symlink.
      if ((await stat(path)).isFile()) files.push(path);
    } catch (error) {
      problems.push(fileProblem(path, `cannot read: ${describeFsError(error)}`));
    }
  }
  return { files, problems };
}

async function loadFiles(files: readonly string[], listingProblems: readonly PolicyProblem[]): Promise<PolicySetLoad> {
  const hash = createHash('sha256');
  const entries: Entry[] = [];
  const problems: PolicyProblem[] = [...listingProblems];
  const read: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      const message = describeFsError(error);
      hash.update(`${file}\0error\0${message}\0`);
      problems.push(fileProblem(file, `cannot read: ${message}`));
      continue;
    }
    // Lengths delimit the fields, so no choice of names and contents can collide with another.
    hash.update(`${file}\0${Buffer.byteLength(file)}\0${Buffer.byteLength(text)}\0`).update(text);
    read.push(file);
    const parsed = parseFile(text, file);
    entries.push(...parsed.entries);
    problems.push(...parsed.problems);
  }
  for (const p of listingProblems) hash.update(`problem\0${p.file}\0${p.message}\0`);
  problems.push(...duplicateNameProblems(entries));
  return {
    policies: entries.map((e) => e.policy),
    problems: sortProblems(problems, read),
    files: read,
    digest: hash.digest('hex'),
  };
}

function parseFile(text: string, file: string): FileParse {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const entries: Entry[] = [];
  const problems: PolicyProblem[] = [];
  const lineOf = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lineCounter.linePos(offset).line;
  const yamlProblem = (e: YAMLError, document: number | null, severity: 'error' | 'warning'): PolicyProblem => {
    const pos = lineCounter.linePos(e.pos[0]);
    return {
      severity,
      file,
      document,
      path: '',
      line: pos.line,
      column: pos.col,
      message: `${severity === 'error' ? 'YAML syntax error' : 'YAML warning'}: ${e.message}`,
    };
  };

  if ('empty' in docs) {
    for (const e of docs.errors) problems.push(yamlProblem(e, null, 'error'));
    if (problems.length === 0) problems.push({ ...fileProblem(file, 'the file holds no policy document'), severity: 'warning' });
    return { entries, problems };
  }

  let found = 0;
  docs.forEach((doc, i) => {
    const index = i + 1;
    for (const e of doc.warnings) problems.push(yamlProblem(e, index, 'warning'));
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push(yamlProblem(e, index, 'error'));
      found++;
      return;
    }
    // An empty document (between two `---`, or only comments) parses to a null scalar.
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) return;
    found++;
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (error) {
      // toJS refuses alias bombs and similar; the document is then unusable.
      problems.push({
        severity: 'error',
        file,
        document: index,
        path: '',
        line: lineOf(doc.contents.range[0]),
        message: `cannot read the document: ${error instanceof Error ? error.message : String(error)}`,
      });
      return;
    }
    const at = (path: readonly PathSegment[], key?: boolean): number | undefined => lineOf(locate(doc, path, key));
    const result = policyDocumentSchema.safeParse(value);
    if (!result.success) {
      problems.push(...schemaProblems(result.error.issues, value, file, index, at));
      return;
    }
    const policy = toPolicy(result.data, file, index);
    entries.push({ policy, nameLine: at(['metadata', 'name']) });
    problems.push(...policyWarnings(policy, file, index, at));
  });
  if (found === 0 && problems.length === 0) {
    problems.push({ ...fileProblem(file, 'the file holds no policy document'), severity: 'warning' });
  }
  return { entries, problems };
}

function toPolicy(doc: PolicyDocument, file: string, document: number): Policy {
  const { spec } = doc;
  return {
    name: doc.metadata.name,
    mode: spec.mode,
    agents: {
      serviceAccounts: spec.agents.serviceAccounts,
      users: spec.agents.users,
      groups: spec.agents.groups,
    },
    namespaces: spec.namespaces,
    need: {
      static: spec.need.static,
      min: spec.need.min,
      max: spec.need.max,
      onUnavailable: spec.need.onUnavailable,
      prometheus: spec.need.prometheus,
      metricsApi: spec.need.metricsApi,
      hpa: spec.need.hpa,
    },
    limits: toLimits(spec.limits),
    underPressure: spec.underPressure
      ? { windowMs: durationToMs(spec.underPressure.window), limits: toLimits(spec.underPressure.limits) }
      : undefined,
    clones: spec.clones,
    podServiceAccounts: spec.podServiceAccounts,
    justification: spec.justification,
    source: { file, document },
  };
}

function toLimits(limits: PolicyLimits): Limits {
  const { rate, ...rest } = limits;
  return { ...rest, rate: rate ? { instances: rate.instances, perMs: durationToMs(rate.per) } : undefined };
}

type Locator = (path: readonly PathSegment[], key?: boolean) => number | undefined;

/**
 * The offset of the node at `path`, or of the closest ancestor that exists (a missing
 * field is reported at the mapping that lacks it). For a mapping entry the key's offset
 * is used: a block value starts on the line after its key, and users look for the key.
 * With `key`, the last segment names a key whose own position is wanted (unknown fields).
 */
function locate(doc: Document.Parsed, path: readonly PathSegment[], key = false): number | undefined {
  let node: unknown = doc.contents;
  let offset = nodeOffset(node);
  for (const [i, segment] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) break;
      offset = nodeOffset(pair.key) ?? nodeOffset(pair.value) ?? offset;
      if (key && i === path.length - 1) break;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      if (item === undefined) break;
      offset = nodeOffset(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

function nodeOffset(node: unknown): number | undefined {
  if (typeof node !== 'object' || node === null || !('range' in node)) return undefined;
  const range: unknown = node.range;
  return Array.isArray(range) && typeof range[0] === 'number' ? range[0] : undefined;
}

/** Writes a path the way a user writes it in YAML: `spec.agents.serviceAccounts[1]`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const segment of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

/** A short rendering of what the user wrote, for `(got ...)`. */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

const EXPECTED_WORDS: Readonly<Record<string, string>> = {
  object: 'a mapping',
  array: 'a list',
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

function issueMessage(issue: z.core.$ZodIssue, value: unknown): string {
  // zod's own messages ("Invalid input: expected object, received string") are for programmers.
  if (issue.code === 'invalid_type' && issue.message.startsWith('Invalid input')) {
    const expected = EXPECTED_WORDS[issue.expected] ?? issue.expected;
    return value === undefined ? `is required and must be ${expected}` : `must be ${expected} (got ${describeValue(value)})`;
  }
  if (issue.code === 'too_big' && issue.message.startsWith('Too big')) {
    return issue.origin === 'string'
      ? `can be at most ${String(issue.maximum)} characters long`
      : `can be at most ${String(issue.maximum)} (got ${describeValue(value)})`;
  }
  if (value === undefined) return /required/.test(issue.message) ? issue.message : `${issue.message} (the field is missing)`;
  if (issue.code === 'custom' || typeof value === 'object') return issue.message;
  return `${issue.message} (got ${describeValue(value)})`;
}

function schemaProblems(
  issues: readonly z.core.$ZodIssue[],
  value: unknown,
  file: string,
  document: number,
  at: Locator,
): PolicyProblem[] {
  // A document of another kind judged against the ReplicaPolicy schema yields only noise.
  const identity = issues.filter((i) => i.path.length === 1 && (i.path[0] === 'apiVersion' || i.path[0] === 'kind'));
  const relevant = identity.length > 0 ? identity : issues;
  const problems: PolicyProblem[] = [];
  for (const issue of relevant) {
    const path = issue.path as PathSegment[];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        problems.push({
          severity: 'error',
          file,
          document,
          path: formatPath(path),
          line: at([...path, key], true),
          message: `unknown field ${JSON.stringify(key)}`,
        });
      }
      continue;
    }
    const fieldValue = valueAt(value, path);
    let message = issueMessage(issue, fieldValue);
    if (path.length === 0 && issue.code === 'invalid_type') message = `a policy document must be a mapping (got ${describeValue(value)})`;
    if (identity.length > 0 && fieldValue === undefined) {
      message = `${path[0] === 'kind' ? 'kind' : 'apiVersion'} is missing: a policy needs apiVersion: ${POLICY_API_VERSION} and kind: ${POLICY_KIND}`;
    }
    problems.push({ severity: 'error', file, document, path: formatPath(path), line: at(path), message });
  }
  return problems;
}

const CONTROLLER_USER_PREFIXES = ['system:kube-', 'system:node:', 'system:serviceaccount:kube-system:'];
const SERVICE_ACCOUNT_USER_PREFIX = 'system:serviceaccount:';

/** The part of a glob before its first wildcard: every value it matches starts with it. */
function literalPrefix(pattern: string): string {
  const i = pattern.search(/[*?]/);
  return i === -1 ? pattern : pattern.slice(0, i);
}

/** True only when no value can match both: one side literal, and the other does not accept it. */
function surelyDisjoint(a: string, b: string): boolean {
  if (isLiteralGlob(a)) return isLiteralGlob(b) ? a !== b : !compileGlob(b).test(a);
  if (isLiteralGlob(b)) return !compileGlob(a).test(b);
  return false;
}

/** Patterns that are valid but can match nothing an agent could be, and need.static out of range. */
function policyWarnings(policy: Policy, file: string, document: number, at: Locator): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const warn = (path: PathSegment[], message: string): void => {
    problems.push({ severity: 'warning', file, document, path: formatPath(path), line: at(path), message });
  };

  policy.agents.serviceAccounts.forEach((pattern, i) => {
    const path = ['spec', 'agents', 'serviceAccounts', i];
    const shown = JSON.stringify(pattern);
    const colon = pattern.indexOf(':');
    if (colon === -1) {
      if (/^\*+$/.test(pattern)) return;
      if (isLiteralGlob(pattern)) {
        warn(path, `${shown} has no ":" and can never match: write a service account as namespace:name (e.g. "agents:${pattern}")`);
      } else {
        warn(path, `${shown} has no ":": it is matched against namespace:name as a whole; write it as namespace:name (e.g. "*:${pattern}")`);
      }
      return;
    }
    if (pattern.indexOf(':', colon + 1) !== -1) {
      warn(path, `${shown} has more than one ":" and can never match: a service account is namespace:name, and neither part holds ":"`);
      return;
    }
    const namespacePart = pattern.slice(0, colon);
    if (namespacePart === 'kube-system') {
      warn(path, `${shown} names kube-system service accounts, which are controllers and never agents: the pattern matches nothing`);
      return;
    }
    if (policy.namespaces !== undefined) {
      if (policy.namespaces.length === 0) {
        warn(path, `${shown} can never match: spec.namespaces is empty`);
      } else if (policy.namespaces.every((ns) => surelyDisjoint(namespacePart, ns))) {
        warn(
          path,
          `${shown} can never match: its namespace ${JSON.stringify(namespacePart)} is outside spec.namespaces (${policy.namespaces.join(', ')}), and both must match`,
        );
      }
    }
  });

  policy.agents.users.forEach((pattern, i) => {
    const path = ['spec', 'agents', 'users', i];
    const shown = JSON.stringify(pattern);
    const prefix = literalPrefix(pattern);
    if (CONTROLLER_USER_PREFIXES.some((p) => prefix.startsWith(p))) {
      warn(path, `${shown} only matches Kubernetes controllers and nodes, which are never agents: the pattern matches nothing`);
    } else if (pattern.startsWith(SERVICE_ACCOUNT_USER_PREFIX)) {
      const rest = pattern.slice(SERVICE_ACCOUNT_USER_PREFIX.length);
      warn(path, `${shown} is a service account: write it under spec.agents.serviceAccounts as namespace:name (${JSON.stringify(rest)}), where spec.namespaces and the service-account rules apply`);
    }
  });

  const { static: staticNeed, min, max } = policy.need;
  if (staticNeed !== undefined) {
    if (min !== undefined && staticNeed < min) {
      warn(['spec', 'need', 'static'], `need.static (${staticNeed}) is below need.min (${min}), so it never applies as written`);
    } else if (max !== undefined && staticNeed > max) {
      warn(['spec', 'need', 'static'], `need.static (${staticNeed}) is above need.max (${max}), so it never applies as written`);
    }
  }
  return problems;
}

function duplicateNameProblems(entries: readonly Entry[]): PolicyProblem[] {
  const first = new Map<string, Entry>();
  const problems: PolicyProblem[] = [];
  for (const entry of entries) {
    const earlier = first.get(entry.policy.name);
    if (earlier === undefined) {
      first.set(entry.policy.name, entry);
      continue;
    }
    const e = earlier.policy.source;
    const where = `${e.file} document ${e.document}${earlier.nameLine === undefined ? '' : ` (line ${earlier.nameLine})`}`;
    problems.push({
      severity: 'error',
      file: entry.policy.source.file,
      document: entry.policy.source.document,
      path: 'metadata.name',
      line: entry.nameLine,
      message: `a policy named ${JSON.stringify(entry.policy.name)} is already defined in ${where}; policy names must be unique`,
    });
  }
  return problems;
}

/** Orders problems by file (in read order), then document, then line, so output reads top to bottom. */
function sortProblems(problems: readonly PolicyProblem[], files: readonly string[]): PolicyProblem[] {
  const fileRank = (f: string): number => {
    const i = files.indexOf(f);
    return i === -1 ? -1 : i;
  };
  return problems
    .map((p, i) => ({ p, i }))
    .sort(
      (a, b) =>
        fileRank(a.p.file) - fileRank(b.p.file) ||
        (a.p.document ?? 0) - (b.p.document ?? 0) ||
        (a.p.line ?? 0) - (b.p.line ?? 0) ||
        a.i - b.i,
    )
    .map(({ p }) => p);
}

function fileProblem(file: string, message: string): PolicyProblem {
  return { severity: 'error', file, document: null, path: '', message };
}

function describeFsError(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'not a directory';
    case 'EISDIR':
      return 'is a directory';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
