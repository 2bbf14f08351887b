import { type ChildProcess, spawn } from 'node:child_process';
import { type Agent, request } from 'node:https';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { LogLine } from './telemetry.ts';

export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A guard running as its own process, as `npm start` runs it. */
export interface GuardProcess {
  readonly child: ChildProcess;
  readonly webhookUrl: string;
  readonly opsUrl: string;
  /** stdout, parsed line by line (the guard logs JSON). */
  readonly lines: LogLine[];
  stderr(): string;
  /** Sends SIGTERM and resolves with the exit code once the process is gone and its output read. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `node src/main.ts serve ...args` and waits for its "replica-guard listening" line. */
export async function startGuardProcess(args: readonly string[], timeoutMs = 20_000): Promise<GuardProcess> {
  const child = spawn(process.execPath, ['src/main.ts', 'serve', ...args], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let stderr = '';
  let partial = '';
  // 'close', not 'exit': the last lines the process wrote are read by then.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const listening = new Promise<LogLine>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "replica-guard listening" within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      const complete = partial.split('\n');
      partial = complete.pop() ?? '';
      for (const text of complete) {
        if (text.trim() === '') continue;
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { unparsed: text };
        }
        lines.push(line);
        if (line.msg === 'replica-guard listening') {
          clearTimeout(timer);
          resolve(line);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the guard exited with ${code} before listening; stderr: ${stderr}; stdout: ${JSON.stringify(lines)}`));
    });
  });
  let ready: LogLine;
  try {
    ready = await listening;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const url = (value: unknown): string => {
    if (typeof value !== 'string') throw new Error(`no address in ${JSON.stringify(ready)}`);
    return value;
  };
  return {
    child,
    webhookUrl: url(ready.webhook),
    opsUrl: url(ready.ops),
    lines,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * A directory for a guard process: its policy file and a configuration listening on
 * ephemeral loopback ports, certificates in `certs/`, with `extra` merged at the top level.
 * Returns the configuration's path.
 */
export async function guardProcessConfig(dir: string, policyYaml: string, extra: Record<string, unknown> = {}): Promise<string> {
  await mkdir(join(dir, 'policies'), { recursive: true });
  await writeFile(join(dir, 'policies', 'agents.yaml'), policyYaml);
  const config = join(dir, 'config.yaml');
  const tls = { dir: join(dir, 'certs'), ...(extra.tls as object | undefined) };
  await writeFile(config, YAML.stringify({ webhook: { port: 0 }, ops: { port: 0 }, policies: { dir: join(dir, 'policies') }, ...extra, tls }));
  return config;
}

/** The answer of an HTTPS POST. */
export interface HttpsAnswer {
  readonly status: number;
  readonly body: string;
}

/** POSTs JSON over HTTPS, trusting only `ca`; a fresh connection each time unless an agent is given. */
export function httpsPost(
  url: string,
  body: unknown,
  options: { ca?: string; servername?: string; agent?: Agent } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = request(
      url,
      {
        method: 'POST',
        agent: options.agent ?? false,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.servername === undefined ? {} : { servername: options.servername }),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 10 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** GETs a plain HTTP URL. */
export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}
