import { basename, extname } from 'node:path';
import { RECORDING_FORMAT } from '../record/review-record.ts';
import { splitCsvLine } from './csv.ts';
import { BadLine, type NumberedLine } from './input-lines.ts';
import { Fields, type Observation } from './observation.ts';

/** The columns of the trajectory format, in the order of its CSV header. */
export const TRAJECTORY_COLUMNS = ['time', 'run', 'agent', 'workload', 'requested', 'need'] as const;

/** What a line came to: an observation, or a line of another kind that is read past (a log line). */
export type ReadLine = Observation | 'ignored';

/**
 * Turns lines of the three input formats into observations: recordings (one review per
 * line), the guard's audit log (pino lines; the `decision` lines of the validating webhook
 * count), and trajectories (JSON lines or CSV with a header: time, run, agent, workload,
 * requested, need, and optionally admitted). Throws a {@link BadLine} naming the file and
 * line. A trajectory row is an episode when it asks for more than the workload had; the
 * reader keeps the last admitted count of each workload for that.
 */
export class LineReader {
  readonly #headers = new Map<string, readonly string[]>();
  readonly #jsonFiles = new Set<string>();
  readonly #last = new Map<string, number>();

  read(l: NumberedLine): ReadLine {
    const fast = recordingFastPath(l.text);
    if (fast !== undefined) return fast;
    try {
      // A file of JSON lines stays one: a line that is not an object there is broken JSON, not CSV.
      if (l.text.trimStart().startsWith('{') || this.#jsonFiles.has(l.file)) {
        this.#jsonFiles.add(l.file);
        return this.#json(l);
      }
      return this.#csv(l);
    } catch (err) {
      if (err instanceof BadLine) throw err;
      throw new BadLine(l.file, l.line, err instanceof Error ? err.message : String(err));
    }
  }

  #json(l: NumberedLine): ReadLine {
    let parsed: unknown;
    try {
      parsed = JSON.parse(l.text);
    } catch (err) {
      throw new Error(`not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!Fields.isRecord(parsed)) throw new Error('not a JSON object');
    const f = new Fields(parsed);
    if (typeof parsed.format === 'string') return fromRecording(f, parsed.format);
    if ('audit' in parsed || ('msg' in parsed && 'level' in parsed)) return fromAuditLine(f, runOfFile(l.file));
    return this.#trajectory(f);
  }

  #csv(l: NumberedLine): ReadLine {
    const cells = splitCsvLine(l.text);
    if (cells === undefined) throw new Error('a CSV line with an unterminated quote');
    const header = this.#headers.get(l.file);
    if (header === undefined) {
      const missing = TRAJECTORY_COLUMNS.filter((c) => !cells.includes(c));
      if (missing.length > 0) {
        throw new Error(
          `neither JSON nor a CSV header with the columns ${TRAJECTORY_COLUMNS.join(',')} (missing ${missing.join(', ')})`,
        );
      }
      this.#headers.set(l.file, cells);
      return 'ignored';
    }
    if (cells.length !== header.length) throw new Error(`${cells.length} CSV fields, the header has ${header.length}`);
    const row: Record<string, unknown> = {};
    header.forEach((name, i) => {
      const cell = cells[i] ?? '';
      row[name] = name === 'requested' || name === 'need' || name === 'admitted' ? csvNumber(cell) : cell;
    });
    return this.#trajectory(new Fields(row));
  }

  #trajectory(f: Fields): Observation {
    const run = f.string('run');
    const agent = f.string('agent');
    const workload = f.string('workload');
    const time = f.time('time');
    const requested = f.count('requested');
    const need = f.need('need');
    const admitted = f.optionalCount('admitted') ?? requested;
    if (admitted > requested) throw new Error(`admitted (${admitted}) must not exceed requested (${requested})`);
    const key = JSON.stringify([run, agent, workload]);
    const from = this.#last.get(key) ?? 0;
    this.#last.set(key, admitted);
    const grows = requested > from;
    return {
      run,
      agent,
      workload,
      time,
      requested,
      admitted,
      need,
      episode: grows ? { from, requested, admitted, need, measured: need !== null, fallback: false } : undefined,
    };
  }
}

function csvNumber(cell: string): number | string | null {
  if (cell === '') return null;
  const n = Number(cell);
  return Number.isFinite(n) ? n : cell;
}

/** The run of an audit log's lines: its file name without the extension. */
function runOfFile(file: string): string {
  return file === '-' ? 'stdin' : basename(file, extname(file));
}

const RECORDING_HEAD = `{"format":"${RECORDING_FORMAT}",`;

/**
 * A recording line as the recorder writes it, read without parsing the request and the
 * facts (most of the line): the head (time, run, agent), the request's identifying fields
 * and the verdict are parsed alone. Strings in JSON escape their quotes, so the markers
 * cannot occur inside a value. Anything unexpected returns undefined and the line takes
 * the full path, which also gives the error message.
 */
function recordingFastPath(text: string): Observation | undefined {
  if (!text.startsWith(RECORDING_HEAD)) return undefined;
  try {
    const requestAt = text.indexOf(',"request":');
    const userAt = text.indexOf(',"userInfo":', requestAt);
    const verdictAt = text.lastIndexOf(',"verdict":');
    if (requestAt < 0 || userAt < 0 || verdictAt < userAt || !text.endsWith('}')) return undefined;
    const head = new Fields(JSON.parse(`${text.slice(0, requestAt)}}`) as Record<string, unknown>);
    const request = new Fields(JSON.parse(`${text.slice(requestAt + 11, userAt)}}`) as Record<string, unknown>);
    const v = new Fields(JSON.parse(text.slice(verdictAt + 11, -1)) as Record<string, unknown>);
    const deadline = text.lastIndexOf('"decidedBy":"deadline"', verdictAt) > userAt;
    return observationOf(head, request, v, deadline);
  } catch {
    return undefined;
  }
}

function fromRecording(f: Fields, format: string): Observation {
  if (format !== RECORDING_FORMAT) throw new Error(`unsupported recording format ${JSON.stringify(format)} (this version reads ${RECORDING_FORMAT})`);
  const facts = f.object('facts');
  return observationOf(f, f.object('request'), f.object('verdict'), facts.optionalString('decidedBy') === 'deadline');
}

function observationOf(head: Fields, request: Fields, v: Fields, deadline: boolean): Observation {
  const resource = request.object('resource');
  const from = v.count('from');
  const requested = v.count('requested');
  const admitted = v.count('admitted');
  const need = v.need('need');
  const counted = v.boolean('growth') && (v.raw('episode') === 'recorded' || deadline);
  return {
    run: head.string('run'),
    agent: head.string('agent'),
    workload: `${resource.string('resource')}/${request.optionalString('namespace')}/${request.optionalString('name')}`,
    time: head.time('time'),
    requested,
    admitted,
    need,
    episode: counted ? { from, requested, admitted, need, measured: v.boolean('measured'), fallback: v.boolean('fallback') } : undefined,
  };
}

function fromAuditLine(f: Fields, run: string): ReadLine {
  if (f.raw('msg') !== 'decision' || !Fields.isRecord(f.raw('audit'))) return 'ignored';
  const a = f.object('audit');
  if (a.raw('webhook') !== 'validate' || a.raw('dryRun') === true) return 'ignored';
  const from = a.count('from');
  const requested = a.count('to');
  const need = a.need('need');
  const verdict = a.string('verdict');
  const allowance = a.need('allowance');
  // The audit line has the agent's own count; a clamp admitted the allowance (at most what was asked).
  const admitted = verdict === 'denied' ? from : verdict === 'clamped' ? Math.min(requested, allowance ?? requested) : requested;
  const fallback = a.raw('fallback') === true;
  return {
    run,
    agent: a.string('agent'),
    workload: `${a.string('kind')}/${a.optionalString('namespace')}/${a.optionalString('name')}`,
    time: a.time('time'),
    requested,
    admitted,
    need,
    episode:
      a.raw('episode') === 'recorded'
        ? { from, requested, admitted, need, measured: need !== null || fallback, fallback }
        : undefined,
  };
}
