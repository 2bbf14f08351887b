import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './telemetry.ts';

/** Debian's package installs it here; PROMETHEUS_BIN overrides it. */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

type Labels = Readonly<Record<string, string>>;

/** A small exporter the tests run: gauges and counters whose values the test sets. */
export interface Exporter {
  /** `host:port`, as a scrape target. */
  readonly target: string;
  /** Sets a gauge sample. */
  setGauge(name: string, labels: Labels, value: number): void;
  /**
   * Makes a counter grow at `perSecond` from now on: its value is perSecond × the seconds
   * since this call, computed at each scrape, so `rate()` over it is `perSecond`.
   */
  setCounterRate(name: string, labels: Labels, perSecond: number): void;
  /** Stops exporting a sample: Prometheus marks its series stale at the next scrape. */
  remove(name: string, labels: Labels): void;
  /** Scrapes served so far. */
  scrapes(): number;
  close(): Promise<void>;
}

type Sample =
  | { readonly type: 'gauge'; readonly name: string; readonly labels: Labels; readonly value: number }
  | { readonly type: 'counter'; readonly name: string; readonly labels: Labels; readonly perSecond: number; readonly sinceMs: number };

const sampleKey = (name: string, labels: Labels) =>
  `${name}{${Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',')}}`;

const escapeLabel = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Starts the exporter on a loopback ephemeral port, serving the text format on /metrics. */
export async function startExporter(): Promise<Exporter> {
  const samples = new Map<string, Sample>();
  let scrapes = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    scrapes += 1;
    const now = performance.now();
    const lines: string[] = [];
    const typed = new Set<string>();
    for (const s of samples.values()) {
      if (!typed.has(s.name)) {
        typed.add(s.name);
        lines.push(`# TYPE ${s.name} ${s.type}`);
      }
      const labels = Object.entries(s.labels)
        .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
        .join(',');
      const value = s.type === 'gauge' ? s.value : (s.perSecond * (now - s.sinceMs)) / 1000;
      lines.push(`${s.name}{${labels}} ${value}`);
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the exporter has no port');
  return {
    target: `127.0.0.1:${address.port}`,
    setGauge(name, labels, value) {
      samples.set(sampleKey(name, labels), { type: 'gauge', name, labels, value });
    },
    setCounterRate(name, labels, perSecond) {
      samples.set(sampleKey(name, labels), { type: 'counter', name, labels, perSecond, sinceMs: performance.now() });
    },
    remove(name, labels) {
      samples.delete(sampleKey(name, labels));
    },
    scrapes: () => scrapes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A Prometheus process the tests started. */
export interface PrometheusProcess {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly child: ChildProcess;
  /** What Prometheus logged (it logs to stderr). */
  logs(): string;
  /** Runs an instant query directly, for waiting on the data; throws on an API error. */
  query(promql: string): Promise<{ resultType: string; result: unknown }>;
  /** Polls an instant query until it returns one sample for which `accept` holds; returns the value. */
  waitForSample(promql: string, accept: (value: number) => boolean, timeoutMs?: number): Promise<number>;
  /** Polls until the query returns no series. */
  waitForNoSeries(promql: string, timeoutMs?: number): Promise<void>;
  /** Kills the process (SIGTERM, then SIGKILL after 5 s) and removes its data; idempotent. */
  stop(): Promise<void>;
}

export interface StartPrometheusOptions {
  /** `host:port` scrape targets. */
  readonly targets: readonly string[];
  /** Scrape interval in seconds (default 1). */
  readonly scrapeIntervalSeconds?: number;
  /** A rules file's content, loaded with `rule_files` and evaluated every scrape interval. */
  readonly rules?: string;
  readonly readyTimeoutMs?: number;
}

/** A free loopback port, as the kernel hands out ephemeral ones. */
async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

const running = new Set<ChildProcess>();
// A test worker that exits without its afterAll (a crash, a timeout) must not leave a
// Prometheus behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts Debian's Prometheus on a loopback ephemeral port (never 9090), with its TSDB in a
 * temporary directory and a scrape config for `targets`, and waits until `/-/ready`. The
 * port is found free and then handed over, so another process may take it in between:
 * a start that fails to bind is retried on a new port.
 */
export async function startPrometheus(options: StartPrometheusOptions): Promise<PrometheusProcess> {
  if (!existsSync(PROMETHEUS_BIN)) {
    throw new Error(`${PROMETHEUS_BIN} is missing: install Debian's prometheus (apt-get install prometheus), or set PROMETHEUS_BIN`);
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      return await startOnce(options);
    } catch (error) {
      lastError = error;
      if (!(error instanceof Error) || !/address already in use/.test(error.message)) throw error;
    }
  }
  throw lastError;
}

async function startOnce(options: StartPrometheusOptions): Promise<PrometheusProcess> {
  const interval = options.scrapeIntervalSeconds ?? 1;
  const dir = await mkdtemp(join(tmpdir(), 'replica-guard-prometheus-'));
  if (options.rules !== undefined) await writeFile(join(dir, 'rules.yaml'), options.rules);
  const config = [
    'global:',
    `  scrape_interval: ${interval}s`,
    `  scrape_timeout: ${interval}s`,
    `  evaluation_interval: ${interval}s`,
    ...(options.rules === undefined ? [] : ['rule_files:', `  - ${JSON.stringify(join(dir, 'rules.yaml'))}`]),
    'scrape_configs:',
    '  - job_name: replica-guard-test',
    '    honor_labels: true',
    '    static_configs:',
    `      - targets: [${options.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  running.add(child);
  let logs = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    logs += chunk;
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child);
      resolve();
    });
  });
  let stopped = false;
  const stop = async () => {
    if (!stopped) {
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(killer);
      }
      await rm(dir, { recursive: true, force: true });
    }
  };

  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`prometheus exited (${child.exitCode ?? child.signalCode}) before it was ready: ${logs}`);
        }
        try {
          const res = await fetch(`${url}/-/ready`);
          await res.arrayBuffer();
          return res.status === 200;
        } catch {
          return false;
        }
      },
      'prometheus to be ready',
      options.readyTimeoutMs ?? 15_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const query = async (promql: string) => {
    const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const body = (await res.json()) as { status: string; error?: string; data: { resultType: string; result: unknown } };
    if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
    return body.data;
  };
  const samples = async (promql: string): Promise<number[]> => {
    const data = await query(promql);
    if (data.resultType !== 'vector' || !Array.isArray(data.result)) throw new Error(`not a vector: ${JSON.stringify(data)}`);
    return (data.result as { value: [number, string] }[]).map((s) => Number(s.value[1]));
  };
  return {
    url,
    child,
    logs: () => logs,
    query,
    async waitForSample(promql, accept, timeoutMs = 15_000) {
      let last: number[] = [];
      try {
        return await waitFor(
          async () => {
            last = await samples(promql);
            const [first] = last;
            return last.length === 1 && first !== undefined && accept(first) ? first : undefined;
          },
          `a sample of ${promql}`,
          timeoutMs,
        );
      } catch (error) {
        throw new Error(`${String(error)}; last answer: ${JSON.stringify(last)}`);
      }
    },
    async waitForNoSeries(promql, timeoutMs = 15_000) {
      await waitFor(async () => (await samples(promql)).length === 0, `no series for ${promql}`, timeoutMs);
    },
    stop,
  };
}

/** A server that accepts connections and never answers: a Prometheus stuck past any deadline. */
export async function startSilentServer(): Promise<{ url: string; accepted(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createNetServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
