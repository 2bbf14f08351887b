// Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self
// time, the same time grouped by file or package, and the inclusive time of the guard's
// own functions (src/).
// Usage: node bench/profile-summary.ts FILE.cpuprofile [--top N] [--root DIR] [--requests N]
//   --root: the directory the profiled process ran src/ from, if not this project
//   --requests: requests answered while profiling, for a µs-per-request column
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileEntry {
  readonly name: string;
  readonly ms: number;
  /** Share of the busy time (everything but idle). */
  readonly percent: number;
  /** Microseconds per request answered while profiling, when the request count is known. */
  readonly usPerRequest?: number | undefined;
}

export interface ProfileSummary {
  /** Requests answered while the profile ran (warm-up included), when known. */
  readonly requests?: number | undefined;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly topSelf: readonly ProfileEntry[];
  readonly byLocation: readonly ProfileEntry[];
  readonly ownInclusive: readonly ProfileEntry[];
}

const projectRoot = fileURLToPath(new URL('..', import.meta.url));

/** Directories a path is shown relative to: the project, or the copy of it the guard ran from. */
let roots: readonly string[] = [projectRoot];

function shorten(path: string): string {
  for (const r of roots) {
    const prefix = r.endsWith('/') ? r : `${r}/`;
    if (path.startsWith(prefix)) return path.slice(prefix.length);
  }
  return path;
}

/** Where a frame's code lives: a src/ file, an npm package, a Node internal area, or a V8 pseudo-frame. */
function locationOf(frame: CallFrame): string {
  const url = frame.url;
  if (url === '') {
    if (frame.functionName.startsWith('(')) return frame.functionName;
    return '(native)';
  }
  if (url.startsWith('node:')) {
    const parts = url.split('/');
    return parts.length > 2 ? `${parts[0]}/${parts[1]}/${parts[2]}`.replace(/\.js$/, '') : url;
  }
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/');
    const pkg = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? '');
    return `npm:${pkg}`;
  }
  return shorten(path);
}

function frameName(frame: CallFrame): string {
  const fn = frame.functionName || '(anonymous)';
  if (frame.url === '') return fn;
  const path = frame.url.startsWith('file://') ? fileURLToPath(frame.url) : frame.url;
  const nm = path.lastIndexOf('/node_modules/');
  const shown = nm >= 0 ? path.slice(nm + '/node_modules/'.length) : shorten(path);
  return `${fn} ${shown}:${frame.lineNumber + 1}`;
}

function ranked(map: ReadonlyMap<string, number>, busyMs: number, top: number, requests: number | undefined): ProfileEntry[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => ({
      name,
      ms: round(ms),
      percent: round((100 * ms) / busyMs),
      usPerRequest: requests ? round((1000 * ms) / requests) : undefined,
    }));
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

function add(map: Map<string, number>, key: string, ms: number): void {
  map.set(key, (map.get(key) ?? 0) + ms);
}

/**
 * `sourceRoot`: the directory the profiled process ran its src/ from, when not this
 * project (bench/run.ts runs the guard from a copy).
 */
export function summariseProfile(profile: CpuProfile, top = 25, sourceRoot?: string, requests?: number): ProfileSummary {
  roots = sourceRoot ? [sourceRoot, projectRoot] : [projectRoot];
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // The time between a sample and the next belongs to that sample's frame.
  const selfMs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const next = profile.timeDeltas[i + 1] ?? 0;
    if (id !== undefined) selfMs.set(id, (selfMs.get(id) ?? 0) + next / 1000);
  }
  let totalMs = 0;
  let idleMs = 0;
  const self = new Map<string, number>();
  const byLocation = new Map<string, number>();
  for (const [id, ms] of selfMs) {
    const node = byId.get(id);
    if (!node) continue;
    totalMs += ms;
    if (node.callFrame.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    add(self, frameName(node.callFrame), ms);
    add(byLocation, locationOf(node.callFrame), ms);
  }
  const busyMs = Math.max(totalMs - idleMs, 1e-9);

  // Inclusive time of src/ functions, each counted once per stack (recursion).
  const inclusive = new Map<string, number>();
  const totalOf = new Map<number, number>();
  const subtree = (id: number): number => {
    const known = totalOf.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    let sum = selfMs.get(id) ?? 0;
    for (const child of node?.children ?? []) sum += subtree(child);
    totalOf.set(id, sum);
    return sum;
  };
  const root = profile.nodes[0];
  if (root) {
    const stack: { id: number; active: ReadonlySet<string> }[] = [{ id: root.id, active: new Set() }];
    while (stack.length > 0) {
      const item = stack.pop();
      if (!item) break;
      const node = byId.get(item.id);
      if (!node) continue;
      let active = item.active;
      const location = locationOf(node.callFrame);
      if (location.startsWith('src/')) {
        const name = frameName(node.callFrame);
        if (!active.has(name)) {
          add(inclusive, name, subtree(item.id));
          active = new Set([...active, name]);
        }
      }
      for (const child of node.children ?? []) stack.push({ id: child, active });
    }
  }

  return {
    requests,
    totalMs: round(totalMs),
    idleMs: round(idleMs),
    busyMs: round(busyMs),
    topSelf: ranked(self, busyMs, top, requests),
    byLocation: ranked(byLocation, busyMs, top, requests),
    ownInclusive: ranked(inclusive, busyMs, top, requests),
  };
}

export function readProfile(file: string): CpuProfile {
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`${file} is not a .cpuprofile`);
  const p = parsed as Record<string, unknown>;
  if (!Array.isArray(p.nodes) || !Array.isArray(p.samples) || !Array.isArray(p.timeDeltas)) {
    throw new Error(`${file} is not a .cpuprofile (nodes, samples, timeDeltas expected)`);
  }
  return parsed as CpuProfile;
}

function table(title: string, entries: readonly ProfileEntry[], perRequest: boolean): string {
  const lines = perRequest
    ? [`| ${title} | ms | % of busy | µs / request |`, '|---|---:|---:|---:|']
    : [`| ${title} | ms | % of busy |`, '|---|---:|---:|'];
  for (const e of entries) {
    const name = `\`${e.name.replaceAll('|', '\\|')}\``;
    lines.push(perRequest ? `| ${name} | ${e.ms} | ${e.percent} | ${e.usPerRequest ?? ''} |` : `| ${name} | ${e.ms} | ${e.percent} |`);
  }
  return lines.join('\n');
}

export function formatSummary(summary: ProfileSummary, top = 15): string {
  const perRequest = summary.requests !== undefined && summary.requests > 0;
  const busyPerRequest = perRequest ? `, ${round((1000 * summary.busyMs) / (summary.requests ?? 1))} µs of CPU per request over ${summary.requests} requests` : '';
  return [
    `Busy ${summary.busyMs} ms of ${summary.totalMs} ms sampled (idle ${summary.idleMs} ms)${busyPerRequest}.`,
    '',
    table('Self time by function', summary.topSelf.slice(0, top), perRequest),
    '',
    table('Self time by file or package', summary.byLocation.slice(0, top), perRequest),
    '',
    table('Inclusive time of src/ functions', summary.ownInclusive.slice(0, top), perRequest),
  ].join('\n');
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string' }, root: { type: 'string' }, requests: { type: 'string' } },
  });
  const file = positionals[0];
  if (!file) {
    process.stderr.write('usage: node bench/profile-summary.ts FILE.cpuprofile [--top N] [--root DIR] [--requests N]\n');
    process.exit(2);
  }
  const top = Number(values.top ?? 25);
  const requests = values.requests ? Number(values.requests) : undefined;
  process.stdout.write(`${formatSummary(summariseProfile(readProfile(file), top, values.root, requests), top)}\n`);
}
