import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { NO_SWITCHES, parseSwitches, type SwitchEntry, type Switches } from '../core/switches.ts';
import type { SwitchMetrics } from '../telemetry/switch-metrics.ts';
import type { SwitchData, SwitchStore } from './switch-store.ts';

/** Options of the switch watcher. */
export interface SwitchWatcherOptions {
  readonly store: SwitchStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How often the source is read (default 1 s): a switch reaches every replica within this plus one read. */
  readonly intervalMs?: number | undefined;
  readonly metrics?: SwitchMetrics | undefined;
  /** Told of every map applied (each read, and each write adopted): the replica's acknowledgement. */
  readonly onApplied?: ((data: SwitchData) => void) | undefined;
}

/**
 * Keeps the switches in force in memory, read from their source every interval. A read
 * that fails keeps the last switches read (a freeze must not lift because the API server
 * hiccuped) and is logged once until a read succeeds again. Each switch set or cleared is
 * logged, which is the audit record of the switches themselves.
 */
export class SwitchWatcher {
  readonly #options: SwitchWatcherOptions;
  readonly #intervalMs: number;
  #switches: Switches = NO_SWITCHES;
  #loaded = false;
  #failing = false;
  #lastProblems = '';
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(options: SwitchWatcherOptions) {
    this.#options = options;
    this.#intervalMs = options.intervalMs ?? 1000;
  }

  /** The switches last read (none before the first read). */
  current(): Switches {
    return this.#switches;
  }

  /** True once the source has been read once (a missing ConfigMap or file counts: no switch). */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** Where the switches come from, for messages. */
  get where(): string {
    return this.#options.store.where;
  }

  /** Reads the source now; concurrent calls share one read. Never throws. */
  refresh(): Promise<void> {
    this.#inFlight ??= this.#read().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /** Applies data just written by this process, without waiting for the next read. */
  adopt(data: SwitchData): void {
    this.#apply(data);
  }

  /** Reads at once, then every interval. */
  start(): void {
    if (this.#timer) return;
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
  }

  async #read(): Promise<void> {
    const { store, logger, metrics, clock } = this.#options;
    let data: SwitchData;
    try {
      data = await store.read(AbortSignal.timeout(Math.max(1000, this.#intervalMs * 3)));
    } catch (err) {
      metrics?.readErrors.inc();
      if (!this.#failing) logger.warn({ err, source: store.where }, 'cannot read the safety switches; the switches last read keep applying');
      this.#failing = true;
      return;
    }
    if (this.#failing) logger.info({ source: store.where }, 'the safety switches can be read again');
    this.#failing = false;
    metrics?.lastRead.set(clock.now().getTime() / 1000);
    this.#apply(data);
  }

  #apply(data: SwitchData): void {
    const { logger, store } = this.#options;
    const { switches, problems } = parseSwitches(data);
    const problemText = problems.join('\n');
    if (problemText !== this.#lastProblems && problems.length > 0) {
      logger.warn({ source: store.where, problems }, 'some safety switch entries cannot be read and are ignored');
    }
    this.#lastProblems = problemText;
    const before = this.#switches.entries;
    for (const [key, entry] of switches.entries) {
      const old = before.get(key);
      if (old === undefined || !sameEntry(old, entry)) {
        logger.info({ audit: { switch: key, action: 'set', ...entry, until: untilText(entry) }, source: store.where }, 'safety switch set');
      }
    }
    for (const key of before.keys()) {
      if (!switches.entries.has(key)) logger.info({ audit: { switch: key, action: 'cleared' }, source: store.where }, 'safety switch cleared');
    }
    this.#switches = switches;
    this.#loaded = true;
    this.#options.onApplied?.(data);
  }
}

function sameEntry(a: SwitchEntry, b: SwitchEntry): boolean {
  return a.at === b.at && a.by === b.by && a.reason === b.reason && a.source === b.source && a.until === b.until;
}

function untilText(entry: SwitchEntry): string | undefined {
  return entry.until === undefined ? undefined : new Date(entry.until).toISOString();
}
