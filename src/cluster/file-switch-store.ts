import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import YAML from 'yaml';
import { type SwitchData, type SwitchStore, SwitchStoreError } from './switch-store.ts';

/**
 * The switches of the embedded default (no cluster): a YAML file holding the same map as
 * the ConfigMap's `data`. A missing file is no switch. Writes go to a temporary file
 * renamed over the old one, so a reader never sees half a file; writers in one process
 * are serialised.
 */
export class FileSwitchStore implements SwitchStore {
  readonly where: string;
  readonly #path: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.#path = resolve(path);
    this.where = `file ${this.#path}`;
  }

  async read(): Promise<SwitchData> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new SwitchStoreError(`cannot read ${this.where}: ${(err as Error).message}`, { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = YAML.parse(text);
    } catch (err) {
      throw new SwitchStoreError(`${this.where} is not YAML: ${(err as Error).message}`, { cause: err });
    }
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new SwitchStoreError(`${this.where} must hold a map of keys to strings`);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
    return out;
  }

  update(change: (data: SwitchData) => SwitchData | undefined): Promise<SwitchData> {
    const run = this.#queue.then(async () => {
      const current = await this.read();
      const next = change(current);
      if (next === undefined) return current;
      await mkdir(dirname(this.#path), { recursive: true });
      const tmp = `${this.#path}.${process.pid}.tmp`;
      await writeFile(tmp, YAML.stringify({ ...next }), 'utf8');
      await rename(tmp, this.#path);
      return next;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
