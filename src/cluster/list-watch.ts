import type { Logger } from 'pino';
import { pino } from 'pino';
import type { Clock } from '../clock.ts';
import { type KubeConnection, kubeFetch } from './kube-http.ts';

/**
 * A list+watch reflector for one resource, cluster-wide, on plain HTTP. Built on list and
 * watch rather than @kubernetes/client-node's informer, which stalls silently and stops
 * for good on some errors. What it does, as client-go's reflector does:
 *
 * - LIST in pages (`limit`, `continue`); a 410 on a continue token (its snapshot was
 *   compacted) restarts the list from the first page;
 * - WATCH from the list's resourceVersion with `allowWatchBookmarks=true` and a randomised
 *   server-side `timeoutSeconds`, so that the replicas do not all reconnect at once;
 * - when a watch ends, watch again from the last resourceVersion seen (bookmarks move it);
 * - on 410 Expired (an `ERROR` event or an HTTP 410) LIST again, and turn the difference
 *   between the new list and what it knew into ADDED/MODIFIED/DELETED, so no update is lost;
 * - capped exponential backoff with jitter on errors, honouring `Retry-After`;
 * - a watch that delivers neither an event nor a bookmark for `stallFactor` × the expected
 *   bookmark interval is aborted and started again: a silent stall would otherwise leave
 *   the cache frozen while every health check passes.
 *
 * It keeps no objects: each is handed to the sink, which keeps what it needs. It keeps
 * only each object's key and resourceVersion, to tell changes from repeats on a re-list.
 */

/** A resource, as its API path names it. */
export interface ResourceId {
  /** `''` for the core group. */
  readonly group: string;
  readonly version: string;
  /** Plural, lower case: `deployments`. */
  readonly resource: string;
}

export type ObjectEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** What the reflector reads of an object; everything else is the sink's business. */
export interface RawObject {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly resourceVersion?: string;
    readonly [field: string]: unknown;
  };
  readonly [field: string]: unknown;
}

/** Receives the objects. Exceptions are logged and do not stop the reflector. */
export interface ReflectorSink {
  /**
   * An object was added, changed or deleted. `key` is `namespace/name` (`/name` when
   * cluster-scoped), the same string the reflector keeps, so a sink can key by it for free.
   * A DELETED found by a re-list (the object went while the watch was gone) carries only
   * `metadata.namespace` and `metadata.name`: the sink knows the rest.
   */
  apply(type: ObjectEventType, object: RawObject, key: string): void;
}

/** Why a watch was started again, for a counter. */
export type RestartReason = 'expired' | 'stalled' | 'closed' | 'error';

/** Timing and paging of a reflector. */
export interface ListWatchTuning {
  /** Objects per LIST page. */
  readonly pageSize: number;
  /** The server-side watch timeout is drawn from this range, in seconds. */
  readonly watchTimeoutSeconds: readonly [number, number];
  /** How often the apiserver sends bookmarks on a quiet watch (about once a minute). */
  readonly bookmarkIntervalMs: number;
  /** A watch silent for this many bookmark intervals is stalled. */
  readonly stallFactor: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Limit on one LIST page, and on a watch's response headers. */
  readonly requestTimeoutMs: number;
}

export const DEFAULT_TUNING: ListWatchTuning = {
  pageSize: 500,
  watchTimeoutSeconds: [300, 600],
  bookmarkIntervalMs: 60_000,
  stallFactor: 2,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  requestTimeoutMs: 60_000,
};

export interface ListWatchOptions {
  readonly connection: KubeConnection;
  readonly resource: ResourceId;
  readonly sink: ReflectorSink;
  readonly clock: Clock;
  readonly logger?: Logger | undefined;
  readonly tuning?: Partial<ListWatchTuning> | undefined;
  /** Uniform in [0, 1): jitter and watch timeouts; tests pin it. */
  readonly random?: (() => number) | undefined;
  /** Told each time the watch starts again, with why. */
  readonly onRestart?: ((reason: RestartReason) => void) | undefined;
  /** Shared by the reflectors of one view: how many LIST pages may be in flight at once. */
  readonly listGate?: ListGate | undefined;
}

/**
 * Bounds how many LIST pages a set of reflectors fetch at once. A page of 500 pods is a
 * few megabytes of JSON and several times that once parsed; ten reflectors listing at
 * the same moment would set the process's memory high-water mark (which V8 does not give
 * back) for its whole life, for a sync that is no faster, the apiserver being the limit.
 */
export class ListGate {
  readonly #limit: number;
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  /** Waits for a slot; returns the function that frees it. */
  async acquire(): Promise<() => void> {
    if (this.#active >= this.#limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter, so #active stays as it is.
      if (next) next();
      else this.#active--;
    };
  }
}

/** The apiserver answered 410: the resourceVersion or continue token is too old. */
class ExpiredError extends Error {}

/** An HTTP error from the apiserver, with its Status message. */
export class ApiError extends Error {
  readonly status: number;
  readonly retryAfterMs: number | undefined;
  constructor(status: number, message: string, retryAfterMs?: number) {
    super(message);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Exponential backoff, capped, with "equal jitter": never less than half the step. */
export function backoffDelay(failures: number, initialMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, initialMs * 2 ** Math.max(0, failures - 1));
  return step / 2 + random() * (step / 2);
}

/**
 * Splits a byte stream's text into lines, whatever the chunking: one event may be split
 * across many chunks, and one chunk may hold many events.
 */
export class LineSplitter {
  #pending: string[] = [];

  /** Feeds text; returns the complete lines it finished, without their newlines. */
  push(text: string): string[] {
    const lines: string[] = [];
    let start = 0;
    let nl = text.indexOf('\n', start);
    while (nl >= 0) {
      const piece = text.slice(start, nl);
      const line = this.#pending.length > 0 ? this.#pending.join('') + piece : piece;
      this.#pending = [];
      const trimmed = line.endsWith('\r') ? line.slice(0, -1) : line;
      if (trimmed.length > 0) lines.push(trimmed);
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    // Joined only when its newline arrives: a large object split into many chunks is not re-copied per chunk.
    if (start < text.length) this.#pending.push(text.slice(start));
    return lines;
  }

  /** What is left without a newline (a stream that ended mid-line). */
  rest(): string {
    return this.#pending.join('');
  }
}

interface ListPage {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items?: readonly RawObject[];
}

interface WatchEvent {
  readonly type?: string;
  readonly object?: RawObject & { readonly code?: number; readonly reason?: string; readonly message?: string };
}

/** Compact storage of resourceVersions: etcd's are integers, and a small one costs nothing in a Map. */
type StoredVersion = number | string;
const storeVersion = (rv: string | undefined): StoredVersion => {
  if (rv === undefined) return '';
  return /^\d{1,15}$/.test(rv) ? Number(rv) : rv;
};

/** A list+watch reflector for one resource. Call {@link start}, then {@link stop}. */
export class ListWatch {
  readonly #connection: KubeConnection;
  readonly #resource: ResourceId;
  readonly #sink: ReflectorSink;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #tuning: ListWatchTuning;
  readonly #random: () => number;
  readonly #onRestart: ((reason: RestartReason) => void) | undefined;
  readonly #listGate: ListGate | undefined;
  readonly #path: string;

  readonly #known = new Map<string, StoredVersion>();
  #resourceVersion: string | undefined;
  #needList = true;
  #synced = false;
  #lastActivityMs: number | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #sleepTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #resolveSynced: (() => void) | undefined;
  readonly #syncedPromise: Promise<void>;

  constructor(options: ListWatchOptions) {
    this.#connection = options.connection;
    this.#resource = options.resource;
    this.#sink = options.sink;
    this.#clock = options.clock;
    this.#logger = (options.logger ?? pino({ enabled: false })).child({ resource: resourceLabel(options.resource) });
    this.#tuning = { ...DEFAULT_TUNING, ...options.tuning };
    this.#random = options.random ?? Math.random;
    this.#onRestart = options.onRestart;
    this.#listGate = options.listGate;
    const { group, version, resource } = options.resource;
    this.#path = group === '' ? `/api/${version}/${resource}` : `/apis/${group}/${version}/${resource}`;
    this.#syncedPromise = new Promise((resolve) => {
      this.#resolveSynced = resolve;
    });
  }

  /** `deployments.apps`, `pods`: the resource as kubectl names it, for labels and logs. */
  get label(): string {
    return resourceLabel(this.#resource);
  }

  /** True once the first full LIST has been handed to the sink; never false again. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Resolves when the first full LIST is done. */
  whenSynced(): Promise<void> {
    return this.#syncedPromise;
  }

  /** When the reflector last heard from the apiserver (a finished LIST, an event, a bookmark), on the clock's monotonic scale. */
  get lastActivityMs(): number | undefined {
    return this.#lastActivityMs;
  }

  /** Objects known now. */
  get objectCount(): number {
    return this.#known.size;
  }

  /** The resourceVersion the next watch starts from. */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  start(): void {
    if (this.#loop || this.#stopped) return;
    this.#loop = this.#run();
  }

  /** Stops and waits until no request, timer or socket of this reflector is left. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort(new Error('stopped'));
    if (this.#sleepTimer) clearTimeout(this.#sleepTimer);
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      try {
        if (this.#needList) {
          await this.#list();
          this.#needList = false;
          failures = 0;
        }
        const outcome = await this.#watch();
        if (this.#stopped) break;
        if (outcome.delivered > 0) failures = 0;
        this.#onRestart?.(outcome.stalled ? 'stalled' : 'closed');
        if (outcome.stalled) {
          this.#logger.warn({ silentMs: this.#stallMs() }, 'watch delivered nothing, not even a bookmark: started again');
        } else if (outcome.delivered === 0) {
          // A stream that closes at once with nothing in it is a failure in disguise.
          failures++;
          await this.#sleep(this.#backoff(failures, undefined));
        }
      } catch (err) {
        if (this.#stopped) break;
        if (err instanceof ExpiredError && !this.#needList) {
          // The watch's resourceVersion is too old: list again at once. A LIST that
          // itself answers 410 falls through to the backoff below instead of spinning.
          this.#logger.info('resourceVersion expired: listing again');
          this.#onRestart?.('expired');
          this.#needList = true;
          continue;
        }
        failures++;
        this.#onRestart?.('error');
        const delay = this.#backoff(failures, err instanceof ApiError ? err.retryAfterMs : undefined);
        this.#logger.warn({ err: describe(err), failures, retryInMs: Math.round(delay) }, 'list/watch failed');
        await this.#sleep(delay);
      }
    }
  }

  #backoff(failures: number, retryAfterMs: number | undefined): number {
    const delay = backoffDelay(failures, this.#tuning.backoffInitialMs, this.#tuning.backoffMaxMs, this.#random);
    return Math.max(delay, Math.min(retryAfterMs ?? 0, this.#tuning.backoffMaxMs));
  }

  #stallMs(): number {
    return this.#tuning.bookmarkIntervalMs * this.#tuning.stallFactor;
  }

  async #list(): Promise<void> {
    const seen = new Set<string>();
    let token: string | undefined;
    let restarts = 0;
    let listVersion: string | undefined;
    for (;;) {
      const params = new URLSearchParams({ limit: String(this.#tuning.pageSize) });
      if (token) params.set('continue', token);
      let page: ListPage;
      const release = await this.#listGate?.acquire();
      try {
        if (this.#stopped) throw new Error('stopped');
        page = (await this.#getJson(`${this.#path}?${params}`)) as ListPage;
      } catch (err) {
        release?.();
        if (err instanceof ExpiredError && token && restarts < 3) {
          // The snapshot behind the token was compacted: a consistent list starts over.
          restarts++;
          this.#logger.info('continue token expired: listing from the first page');
          token = undefined;
          seen.clear();
          continue;
        }
        throw err;
      }
      try {
        for (const item of page.items ?? []) {
          const key = keyOf(item);
          seen.add(key);
          const version = storeVersion(item.metadata?.resourceVersion);
          const before = this.#known.get(key);
          if (before !== undefined && before === version) continue;
          this.#known.set(key, version);
          this.#deliver(before === undefined ? 'ADDED' : 'MODIFIED', item, key);
        }
      } finally {
        release?.();
      }
      listVersion = page.metadata?.resourceVersion;
      token = page.metadata?.continue || undefined;
      if (!token) break;
    }
    for (const key of [...this.#known.keys()]) {
      if (seen.has(key)) continue;
      this.#known.delete(key);
      this.#deliver('DELETED', tombstone(key), key);
    }
    this.#resourceVersion = listVersion;
    this.#lastActivityMs = this.#clock.monotonicMs();
    if (!this.#synced) {
      this.#synced = true;
      this.#resolveSynced?.();
      this.#logger.info({ objects: this.#known.size }, 'listed');
    }
  }

  async #watch(): Promise<{ delivered: number; stalled: boolean }> {
    const [low, high] = this.#tuning.watchTimeoutSeconds;
    const timeoutSeconds = Math.round(low + this.#random() * Math.max(0, high - low));
    const params = new URLSearchParams({
      watch: 'true',
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(timeoutSeconds),
    });
    if (this.#resourceVersion) params.set('resourceVersion', this.#resourceVersion);
    const controller = new AbortController();
    this.#abort = controller;
    let delivered = 0;
    let stalled = false;
    let lastHeard = this.#clock.monotonicMs();
    const stallMs = this.#stallMs();
    const stallCheck = setInterval(
      () => {
        if (this.#clock.monotonicMs() - lastHeard > stallMs) {
          stalled = true;
          controller.abort(new Error('watch stalled'));
        }
      },
      Math.max(10, Math.floor(stallMs / 4)),
    );
    try {
      if (this.#stopped) return { delivered, stalled };
      const res = await kubeFetch(this.#connection, `${this.#path}?${params}`, { signal: controller.signal });
      if (!res.ok) await throwFor(res);
      lastHeard = this.#clock.monotonicMs();
      const body = res.body;
      if (!body) return { delivered, stalled };
      const splitter = new LineSplitter();
      const decoder = new TextDecoder();
      for await (const chunk of body) {
        for (const line of splitter.push(decoder.decode(chunk, { stream: true }))) {
          lastHeard = this.#clock.monotonicMs();
          this.#lastActivityMs = lastHeard;
          delivered++;
          this.#handleEvent(line);
        }
      }
      const tail = splitter.rest() + decoder.decode();
      if (tail.trim() !== '') {
        delivered++;
        this.#handleEvent(tail);
      }
      return { delivered, stalled };
    } catch (err) {
      if (stalled || this.#stopped) return { delivered, stalled };
      throw err;
    } finally {
      clearInterval(stallCheck);
      controller.abort(new Error('watch done'));
      if (this.#abort === controller) this.#abort = undefined;
    }
  }

  #handleEvent(line: string): void {
    let event: WatchEvent;
    try {
      event = JSON.parse(line) as WatchEvent;
    } catch {
      throw new Error(`the watch sent a line that is not JSON (${line.length} characters)`);
    }
    const object = event.object;
    if (!object) throw new Error(`a watch event without an object (${event.type ?? 'no type'})`);
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const key = keyOf(object);
        this.#known.set(key, storeVersion(object.metadata?.resourceVersion));
        this.#advance(object);
        this.#deliver(event.type, object, key);
        return;
      }
      case 'DELETED': {
        const key = keyOf(object);
        this.#known.delete(key);
        this.#advance(object);
        this.#deliver('DELETED', object, key);
        return;
      }
      case 'BOOKMARK':
        this.#advance(object);
        return;
      case 'ERROR':
        if (object.code === 410) throw new ExpiredError(object.message ?? 'Expired');
        throw new ApiError(object.code ?? 500, `watch error ${object.code ?? ''} ${object.reason ?? ''}: ${object.message ?? ''}`);
      default:
        throw new Error(`unknown watch event type ${String(event.type)}`);
    }
  }

  #advance(object: RawObject): void {
    const rv = object.metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
  }

  #deliver(type: ObjectEventType, object: RawObject, key: string): void {
    try {
      this.#sink.apply(type, object, key);
    } catch (err) {
      this.#logger.error({ err: describe(err), key, type }, 'the view could not take an object');
    }
  }

  async #getJson(pathAndQuery: string): Promise<unknown> {
    const controller = new AbortController();
    this.#abort = controller;
    const timer = setTimeout(() => controller.abort(new Error('request timed out')), this.#tuning.requestTimeoutMs);
    try {
      const res = await kubeFetch(this.#connection, pathAndQuery, { signal: controller.signal });
      if (!res.ok) await throwFor(res);
      return await res.json();
    } finally {
      clearTimeout(timer);
      if (this.#abort === controller) this.#abort = undefined;
    }
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
      this.#sleepTimer = setTimeout(() => {
        this.#sleepTimer = undefined;
        this.#wake?.();
      }, ms);
    });
  }
}

/** `deployments.apps`, `pods`. */
export function resourceLabel(r: ResourceId): string {
  return r.group === '' ? r.resource : `${r.resource}.${r.group}`;
}

/** `namespace/name`, `/name` for cluster-scoped objects. */
export function keyOf(object: RawObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

function tombstone(key: string): RawObject {
  const slash = key.indexOf('/');
  const namespace = key.slice(0, slash);
  return { metadata: { ...(namespace ? { namespace } : {}), name: key.slice(slash + 1) } };
}

async function throwFor(res: Response): Promise<never> {
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { message?: unknown; reason?: unknown };
    if (typeof body.message === 'string') message = `HTTP ${res.status} ${String(body.reason ?? '')}: ${body.message}`;
  } catch {
    // Not a Status object: the status code says enough.
  }
  if (res.status === 410) throw new ExpiredError(message);
  const retryAfter = Number(res.headers.get('retry-after') ?? '');
  throw new ApiError(res.status, message, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}
