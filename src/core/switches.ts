import { createHash } from 'node:crypto';
import type { AgentIdentity, WorkloadRef } from './types.ts';

/**
 * The safety switches an operator sets: freezes (no growth for one agent, the agents of a
 * namespace, or every agent), break-glass (every policy in audit mode) and exemptions
 * (one agent or one workload in audit mode) that expire by themselves. Their source of
 * truth is a set of string keys and values (a ConfigMap's `data`, or a file with the same
 * map on the embedded default); this module reads and writes that map and answers which
 * switches apply to a request. Pure: the time is a parameter.
 *
 * Keys (each a valid ConfigMap key; namespaces hold no dots, so the split is unambiguous):
 *
 * | key | switch |
 * | --- | --- |
 * | `freeze.all` | every agent frozen |
 * | `freeze.namespace.<ns>` | agents whose service account lives in `<ns>` frozen |
 * | `freeze.agent.<ns>.<name>` | the service account `<ns>:<name>` frozen |
 * | `break-glass` | every policy in audit mode |
 * | `exempt.agent.<ns>.<name>` | that agent's requests judged in audit mode |
 * | `exempt.workload.<ns>.<kind>.<name>` | requests on that workload judged in audit mode (`kind` lower case) |
 *
 * Values are JSON (`{"at", "by", "reason", "source", "until"}`, every field optional except
 * `until` on an exemption); a freeze whose value is not JSON is still a freeze, with the
 * text as its reason, so a hand edit can never lift one by accident.
 */

/** One switch as recorded: who set it, when, why, and until when. */
export interface SwitchEntry {
  readonly at?: string | undefined;
  readonly by?: string | undefined;
  readonly reason?: string | undefined;
  /** `cli`, `annotation`, or whatever wrote it. */
  readonly source?: string | undefined;
  /** Epoch milliseconds after which the switch no longer applies. */
  readonly until?: number | undefined;
}

/** Where a freeze applies. */
export type FreezeScope =
  | { readonly type: 'all' }
  | { readonly type: 'namespace'; readonly namespace: string }
  | { readonly type: 'agent'; readonly namespace: string; readonly name: string };

/** What an exemption covers. */
export type ExemptionScope =
  | { readonly type: 'agent'; readonly namespace: string; readonly name: string }
  | { readonly type: 'workload'; readonly namespace: string; readonly kind: string; readonly name: string };

/** Every switch set, keyed as in the source map. */
export interface Switches {
  readonly entries: ReadonlyMap<string, SwitchEntry>;
}

/** No switch set. */
export const NO_SWITCHES: Switches = { entries: new Map() };

/** The switches that apply to one request, by key. */
export interface ApplicableSwitches {
  readonly freeze?: { readonly key: string; readonly entry: SwitchEntry } | undefined;
  readonly breakGlass?: { readonly key: string; readonly entry: SwitchEntry } | undefined;
  readonly exemption?: { readonly key: string; readonly entry: SwitchEntry } | undefined;
}

export const BREAK_GLASS_KEY = 'break-glass';
const FREEZE_PREFIX = 'freeze.';
const EXEMPT_PREFIX = 'exempt.';
/** A DNS-1123 label: what a namespace name is. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A DNS-1123 subdomain: what a service account or workload name is. */
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The key of a freeze. Throws on a name Kubernetes would not accept. */
export function freezeKey(scope: FreezeScope): string {
  switch (scope.type) {
    case 'all':
      return 'freeze.all';
    case 'namespace':
      return `freeze.namespace.${checked(scope.namespace, NAMESPACE, 'namespace')}`;
    case 'agent':
      return `freeze.agent.${checked(scope.namespace, NAMESPACE, 'namespace')}.${checked(scope.name, NAME, 'name')}`;
  }
}

/** The key of an exemption. Throws on a name Kubernetes would not accept. */
export function exemptionKey(scope: ExemptionScope): string {
  const ns = checked(scope.namespace, NAMESPACE, 'namespace');
  const name = checked(scope.name, NAME, 'name');
  if (scope.type === 'agent') return `exempt.agent.${ns}.${name}`;
  const kind = checked(scope.kind.toLowerCase(), /^[a-z0-9]+$/, 'kind');
  return `exempt.workload.${ns}.${kind}.${name}`;
}

function checked(value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value) || value.length > 253) throw new Error(`${JSON.stringify(value)} is not a valid ${what}`);
  return value;
}

/** Reads `NAMESPACE:NAME` (kubectl's way of naming a service account in this project's CLI). */
export function parseAgentRef(text: string): { namespace: string; name: string } {
  const parts = text.split(':');
  const [namespace, name] = parts;
  if (parts.length !== 2 || !namespace || !name) throw new Error(`expected NAMESPACE:NAME, got ${JSON.stringify(text)}`);
  checked(namespace, NAMESPACE, 'namespace');
  checked(name, NAME, 'name');
  return { namespace, name };
}

/** The switches in a source map, and what in it could not be read (ignored). */
export function parseSwitches(data: Readonly<Record<string, string>>): { switches: Switches; problems: string[] } {
  const entries = new Map<string, SwitchEntry>();
  const problems: string[] = [];
  for (const [key, value] of Object.entries(data).sort(([a], [b]) => a.localeCompare(b))) {
    // What the guard remembers of annotations it copied: bookkeeping, not a switch.
    if (key.startsWith('copied.')) continue;
    const kind = keyKind(key);
    if (kind === undefined) {
      problems.push(`${key}: not a switch key; ignored`);
      continue;
    }
    const entry = parseEntry(value);
    if (entry === undefined) {
      if (kind === 'freeze') entries.set(key, { reason: value.trim() || undefined });
      else problems.push(`${key}: the value is not a JSON object; ignored`);
      continue;
    }
    if (kind === 'exemption' && entry.until === undefined) {
      problems.push(`${key}: an exemption needs "until" (an RFC 3339 time); ignored`);
      continue;
    }
    entries.set(key, entry);
  }
  return { switches: { entries }, problems };
}

function keyKind(key: string): 'freeze' | 'break-glass' | 'exemption' | undefined {
  if (key === BREAK_GLASS_KEY) return 'break-glass';
  if (key === 'freeze.all') return 'freeze';
  if (/^freeze\.namespace\.[a-z0-9-]+$/.test(key)) return 'freeze';
  if (/^freeze\.agent\.[a-z0-9-]+\.[a-z0-9.-]+$/.test(key)) return 'freeze';
  if (/^exempt\.agent\.[a-z0-9-]+\.[a-z0-9.-]+$/.test(key)) return 'exemption';
  if (/^exempt\.workload\.[a-z0-9-]+\.[a-z0-9]+\.[a-z0-9.-]+$/.test(key)) return 'exemption';
  return undefined;
}

function parseEntry(value: string): SwitchEntry | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const untilText = text(o.until);
  const until = untilText === undefined ? undefined : Date.parse(untilText);
  return {
    at: text(o.at),
    by: text(o.by),
    reason: text(o.reason),
    source: text(o.source),
    // An unreadable expiry has already passed: the switch must not apply for ever by mistake.
    until: until === undefined ? undefined : Number.isNaN(until) ? 0 : until,
  };
}

/** The value stored for an entry. */
export function formatEntry(entry: SwitchEntry): string {
  const out: Record<string, string> = {};
  if (entry.at !== undefined) out.at = entry.at;
  if (entry.by !== undefined) out.by = entry.by;
  if (entry.reason !== undefined) out.reason = entry.reason;
  if (entry.source !== undefined) out.source = entry.source;
  if (entry.until !== undefined) out.until = new Date(entry.until).toISOString();
  return JSON.stringify(out);
}

const live = (entry: SwitchEntry | undefined, nowMs: number) => entry !== undefined && (entry.until === undefined || nowMs < entry.until);

/**
 * The switches that apply to an agent's request on a workload at `nowMs`: the narrowest
 * freeze (agent, then namespace, then all), break-glass, and an exemption of the agent or
 * the workload. Expired entries do not apply.
 */
export function applicableSwitches(switches: Switches, agent: AgentIdentity, ref: WorkloadRef, nowMs: number): ApplicableSwitches {
  const pick = (keys: readonly string[]) => {
    for (const key of keys) {
      const entry = switches.entries.get(key);
      if (entry !== undefined && live(entry, nowMs)) return { key, entry };
    }
    return undefined;
  };
  const sa = agent.serviceAccount;
  const freezeKeys = sa
    ? [`${FREEZE_PREFIX}agent.${sa.namespace}.${sa.name}`, `${FREEZE_PREFIX}namespace.${sa.namespace}`, 'freeze.all']
    : ['freeze.all'];
  const exemptKeys = [
    ...(sa ? [`${EXEMPT_PREFIX}agent.${sa.namespace}.${sa.name}`] : []),
    `${EXEMPT_PREFIX}workload.${ref.namespace}.${ref.kind.toLowerCase()}.${ref.name}`,
  ];
  return { freeze: pick(freezeKeys), breakGlass: pick([BREAK_GLASS_KEY]), exemption: pick(exemptKeys) };
}

/** Switches in force at `nowMs`, by kind, for gauges. */
export function activeCounts(switches: Switches, nowMs: number): Record<SwitchKind, number> {
  const counts: Record<SwitchKind, number> = {
    'freeze-all': 0,
    'freeze-namespace': 0,
    'freeze-agent': 0,
    'break-glass': 0,
    'exempt-agent': 0,
    'exempt-workload': 0,
  };
  for (const [key, entry] of switches.entries) {
    if (live(entry, nowMs)) counts[switchKindOf(key)] += 1;
  }
  return counts;
}

/** The kinds of switch, as metric labels. */
export type SwitchKind = 'freeze-all' | 'freeze-namespace' | 'freeze-agent' | 'break-glass' | 'exempt-agent' | 'exempt-workload';

/** The kind of a valid switch key. */
export function switchKindOf(key: string): SwitchKind {
  if (key === BREAK_GLASS_KEY) return 'break-glass';
  if (key === 'freeze.all') return 'freeze-all';
  if (key.startsWith('freeze.namespace.')) return 'freeze-namespace';
  if (key.startsWith('freeze.agent.')) return 'freeze-agent';
  if (key.startsWith('exempt.agent.')) return 'exempt-agent';
  return 'exempt-workload';
}

/** A freeze key in words: `agent agents:agent-1`, `namespace agents`, `every agent`. */
export function describeFreeze(key: string): string {
  if (key === 'freeze.all') return 'every agent';
  if (key.startsWith('freeze.namespace.')) return `the agents of namespace ${key.slice('freeze.namespace.'.length)}`;
  const rest = key.slice('freeze.agent.'.length);
  const dot = rest.indexOf('.');
  return `agent ${rest.slice(0, dot)}:${rest.slice(dot + 1)}`;
}

/** A digest of a switch map (keys sorted): what a replica acknowledges having applied. */
export function switchesDigest(data: Readonly<Record<string, string>>): string {
  const sorted = Object.keys(data)
    .sort()
    .map((k) => [k, data[k]]);
  return createHash('sha256').update(JSON.stringify(sorted)).digest('hex').slice(0, 32);
}
