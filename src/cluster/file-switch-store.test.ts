import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capturingLogger, testClock } from '../../test/helpers/telemetry.ts';
import { FileSwitchStore } from './file-switch-store.ts';
import { SwitchWatcher } from './switch-watcher.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-switch-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileSwitchStore', () => {
  it('reads a missing file as no switch, writes YAML, and serialises concurrent updates', async () => {
    const store = new FileSwitchStore(join(dir, 'sub', 'switches.yaml'));
    expect(await store.read()).toEqual({});
    await Promise.all([
      store.update((d) => ({ ...d, 'freeze.all': '{}' })),
      store.update((d) => ({ ...d, 'break-glass': '{"until":"2030-01-01T00:00:00.000Z"}' })),
    ]);
    expect(await store.read()).toEqual({ 'freeze.all': '{}', 'break-glass': '{"until":"2030-01-01T00:00:00.000Z"}' });
    expect(await readFile(join(dir, 'sub', 'switches.yaml'), 'utf8')).toContain('freeze.all:');
  });

  it('refuses a file that is not a map, with its path; the watcher keeps the switches it read last', async () => {
    const path = join(dir, 'switches.yaml');
    const store = new FileSwitchStore(path);
    const { logger, lines } = capturingLogger();
    const watcher = new SwitchWatcher({ store, clock: testClock(), logger });
    await writeFile(path, 'freeze.all: "{}"\n');
    await watcher.refresh();
    expect([...watcher.current().entries.keys()]).toEqual(['freeze.all']);
    await writeFile(path, '- a list\n');
    await expect(store.read()).rejects.toThrow(`file ${path} must hold a map of keys to strings`);
    await watcher.refresh();
    expect([...watcher.current().entries.keys()]).toEqual(['freeze.all']);
    expect(lines.map((l) => l.msg)).toContain('cannot read the safety switches; the switches last read keep applying');
    await writeFile(path, 'freeze.all: "{}"\nnot-a-switch: x\n');
    await watcher.refresh();
    expect(lines.map((l) => l.msg)).toContain('some safety switch entries cannot be read and are ignored');
  });
});
