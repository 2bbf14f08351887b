// Builds the real cluster parts of the test tier (kube-apiserver, kubectl, etcd, helm)
// from their pinned Go modules into the cache, once per pinned version. `npm test` and
// `npm run test:cluster` run it first; a warm cache returns at once.
import { spawn } from 'node:child_process';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheRoot, type ToolBuild, toolBuilds } from './cluster-tools.ts';

const HEARTBEAT_MS = 30_000;
// Where Go's own installer puts it; a CI shell may not have it on the PATH.
const FALLBACK_GO = '/usr/local/go/bin/go';

function say(line: string): void {
  process.stderr.write(`[cluster tools] ${line}\n`);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Runs a command in `cwd`, its output passed through, rejecting with what it printed on failure. */
function run(command: string, args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', (err) =>
      reject(
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? new Error(`${command} is not on the PATH: the test tier builds kube-apiserver, etcd and helm with Go 1.26 or later`)
          : err,
      ),
    );
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} in ${cwd} ended with ${signal ?? `exit ${code}`}`)),
    );
  });
}

/** `go` from the PATH, else Go's default install location. */
async function goCommand(): Promise<string> {
  const onPath = (process.env.PATH ?? '').split(':').filter((d) => d !== '');
  for (const dir of onPath) if (await exists(join(dir, 'go'))) return join(dir, 'go');
  return (await exists(FALLBACK_GO)) ? FALLBACK_GO : 'go';
}

async function build(tool: ToolBuild, go: string): Promise<void> {
  const names = Object.keys(tool.binaries);
  const present = await Promise.all(names.map((n) => exists(join(tool.dir, n))));
  if (present.every(Boolean)) return;
  // A partial folder is never used: the binaries land in a sibling and move in at once.
  const staging = `${tool.dir}.partial-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const started = Date.now();
  say(`building ${tool.label} into ${tool.dir} (first run only; minutes on two cores)`);
  const heartbeat = setInterval(() => say(`still building ${tool.label}: ${Math.round((Date.now() - started) / 1000)} s`), HEARTBEAT_MS);
  try {
    for (const [name, pkg] of Object.entries(tool.binaries)) {
      await run(go, ['build', `-ldflags=${tool.ldflags}`, '-o', join(staging, name), pkg], tool.moduleDir);
    }
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  } finally {
    clearInterval(heartbeat);
  }
  await rm(tool.dir, { recursive: true, force: true });
  await rename(staging, tool.dir);
  say(`built ${tool.label} in ${Math.round((Date.now() - started) / 1000)} s`);
}

try {
  await mkdir(cacheRoot(), { recursive: true });
  const go = await goCommand();
  for (const tool of toolBuilds()) await build(tool, go);
} catch (error) {
  say(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}
