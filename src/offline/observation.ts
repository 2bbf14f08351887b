import type { RiskEpisode } from '../core/risk.ts';

/**
 * One point of an agent's run, from any input format: the counts of one workload at one
 * time, and the episode when the line is a growth request counted once.
 */
export interface Observation {
  readonly run: string;
  readonly agent: string;
  readonly workload: string;
  /** Milliseconds since the epoch for a timestamp, or the number the input gave. */
  readonly time: number;
  readonly requested: number;
  readonly admitted: number;
  readonly need: number | null;
  readonly episode: RiskEpisode | undefined;
}

type Json = Record<string, unknown>;

/** Reads fields of a parsed line, each failure a message naming the field. */
export class Fields {
  readonly #o: Json;
  readonly #prefix: string;

  constructor(o: Json, prefix = '') {
    this.#o = o;
    this.#prefix = prefix;
  }

  static isRecord(value: unknown): value is Json {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  }

  #name(key: string): string {
    return `${this.#prefix}${key}`;
  }

  object(key: string): Fields {
    const v = this.#o[key];
    if (!Fields.isRecord(v)) throw new Error(`${this.#name(key)} must be an object`);
    return new Fields(v, `${this.#name(key)}.`);
  }

  string(key: string): string {
    const v = this.#o[key];
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    if (typeof v !== 'string' || v === '') throw new Error(`${this.#name(key)} must be a non-empty string, got ${show(v)}`);
    return v;
  }

  optionalString(key: string): string {
    const v = this.#o[key];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new Error(`${this.#name(key)} must be a string, got ${show(v)}`);
    return v;
  }

  count(key: string): number {
    const v = this.#o[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new Error(`${this.#name(key)} must be a whole number of 0 or more, got ${show(v)}`);
    }
    return v;
  }

  optionalCount(key: string): number | undefined {
    return this.#o[key] === undefined || this.#o[key] === null ? undefined : this.count(key);
  }

  need(key: string): number | null {
    const v = this.#o[key];
    if (v === null || v === undefined || v === '') return null;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new Error(`${this.#name(key)} must be a number of 0 or more, or null, got ${show(v)}`);
    }
    return v;
  }

  boolean(key: string): boolean {
    const v = this.#o[key];
    if (typeof v !== 'boolean') throw new Error(`${this.#name(key)} must be true or false, got ${show(v)}`);
    return v;
  }

  time(key: string): number {
    const v = this.#o[key];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string') {
      const asNumber = Number(v);
      if (v.trim() !== '' && Number.isFinite(asNumber)) return asNumber;
      const t = Date.parse(v);
      if (Number.isFinite(t)) return t;
    }
    throw new Error(`${this.#name(key)} must be an ISO 8601 time or a number, got ${show(v)}`);
  }

  raw(key: string): unknown {
    return this.#o[key];
  }
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}
