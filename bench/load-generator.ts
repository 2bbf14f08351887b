// The load generator, a child process of bench/run.ts so that it does not share an event
// loop with the servers it measures. It runs one load run per message received over IPC
// and answers with its figures: autocannon, or (pacing 'even') requests sent at evenly
// spaced times over keep-alive connections of Node's own HTTPS client.
import type { ClientRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import autocannon from 'autocannon';
import { type LatencySummary, LatencyRecorder } from './stats.ts';
import { bodyFactory, isStreamName, type StreamName } from './streams.ts';

/** One run, as bench/run.ts asks for it. */
export interface LoadSpec {
  /** e.g. https://127.0.0.1:8443/validate?timeout=10s */
  readonly url: string;
  readonly stream: StreamName;
  readonly connections: number;
  readonly durationSec: number;
  /** Requests per second across all connections; absent: as fast as the server answers. */
  readonly overallRate?: number | undefined;
  /** Whether each answer must say `"allowed":true` (else `"allowed":false`). */
  readonly expectAllowed: boolean;
  /** PEM of the CA (autocannon itself connects with rejectUnauthorized: false). */
  readonly ca: string;
  /**
   * How a fixed rate is spread: 'autocannon' sends each connection's share of a second
   * back to back at the start of that second; 'even' sends one request every 1/rate s.
   */
  readonly pacing: 'autocannon' | 'even';
}

export interface LoadResult {
  /** 2xx answers with the expected verdict per second of the run. */
  readonly requestsPerSec: number;
  /** autocannon's own figure: the mean of its per-second samples. */
  readonly autocannonRequestsPerSecAvg: number;
  readonly responses2xx: number;
  /** Every 2xx response's time, in milliseconds, from our own recorder (exact, not bucketed). */
  readonly latencyMs: LatencySummary;
  /** autocannon's histogram (whole milliseconds; at a fixed rate corrected for coordinated omission). */
  readonly autocannonLatencyMs?: { readonly p50: number; readonly p99: number; readonly max: number } | undefined;
  /** Even pacing: from the time each request was due rather than sent (includes any lateness of the generator). */
  readonly latencyFromScheduleMs?: LatencySummary | undefined;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly mismatches: number;
  readonly durationSec: number;
}

export type GeneratorRequest = { readonly type: 'run'; readonly id: number; readonly spec: LoadSpec } | { readonly type: 'exit' };

export type GeneratorReply =
  | { readonly type: 'result'; readonly id: number; readonly result: LoadResult }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const nextBody = bodyFactory(spec.stream);
  const expected = spec.expectAllowed ? '"allowed":true' : '"allowed":false';
  const latencies = new LatencyRecorder();
  const url = new URL(spec.url);
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: url.origin,
        connections: spec.connections,
        duration: spec.durationSec,
        ...(spec.overallRate ? { overallRate: spec.overallRate } : {}),
        timeout: 10,
        tlsOptions: { ca: spec.ca },
        verifyBody: (body) => body.includes(expected),
        requests: [
          {
            method: 'POST',
            path: url.pathname + url.search,
            headers: { 'content-type': 'application/json', accept: 'application/json' },
            setupRequest: (request) => ({ ...request, body: nextBody() }),
          },
        ],
      },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        const responses2xx = result['2xx'] - result.mismatches;
        resolve({
          requestsPerSec: result.duration > 0 ? responses2xx / result.duration : 0,
          autocannonRequestsPerSecAvg: result.requests.average,
          responses2xx,
          latencyMs: latencies.summary(),
          autocannonLatencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
          errors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          mismatches: result.mismatches,
          durationSec: result.duration,
        });
      },
    );
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
      if (statusCode >= 200 && statusCode < 300) latencies.record(responseTimeMs);
    });
  });
}

/** Keep-alive connections per server, kept from the warm-up to the measured run. */
const agents = new Map<string, Agent>();

function agentFor(spec: LoadSpec): Agent {
  const key = `${new URL(spec.url).origin} ${spec.connections}`;
  let agent = agents.get(key);
  if (!agent) {
    agent = new Agent({ keepAlive: true, maxSockets: spec.connections, maxFreeSockets: spec.connections, ca: spec.ca });
    agents.set(key, agent);
  }
  return agent;
}

/** How long after the last scheduled request the answers still count (autocannon's default timeout). */
const GRACE_MS = 10_000;

function runEven(spec: LoadSpec): Promise<LoadResult> {
  const rate = spec.overallRate;
  if (!rate) return Promise.reject(new Error('even pacing needs overallRate'));
  const nextBody = bodyFactory(spec.stream);
  const expected = spec.expectAllowed ? '"allowed":true' : '"allowed":false';
  const latencies = new LatencyRecorder();
  const fromSchedule = new LatencyRecorder();
  const agent = agentFor(spec);
  const url = new URL(spec.url);
  const intervalMs = 1000 / rate;
  const total = Math.round(rate * spec.durationSec);
  const start = performance.now() + 10;
  let sent = 0;
  let inFlight = 0;
  let responses2xx = 0;
  let errors = 0;
  let non2xx = 0;
  let mismatches = 0;
  let lastResponse = start;
  let done = false;
  const pending = new Set<ClientRequest>();

  return new Promise((resolve) => {
    // Like autocannon's timeout: what is not answered within GRACE_MS of the end of the
    // schedule counts as timed out, so that a server that cannot keep the rate does not
    // keep the run going until its backlog drains.
    let grace: NodeJS.Timeout | undefined;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(grace);
      const timeouts = pending.size;
      for (const req of pending) req.destroy();
      pending.clear();
      const elapsedSec = (Math.max(lastResponse, start + spec.durationSec * 1000) - start) / 1000;
      resolve({
        requestsPerSec: responses2xx / elapsedSec,
        autocannonRequestsPerSecAvg: 0,
        responses2xx,
        latencyMs: latencies.summary(),
        latencyFromScheduleMs: fromSchedule.summary(),
        errors,
        timeouts,
        non2xx,
        mismatches,
        durationSec: elapsedSec,
      });
    };
    const settle = (req: ClientRequest) => {
      if (done) return;
      pending.delete(req);
      inFlight--;
      if (sent === total && inFlight === 0) finish();
    };
    const send = (due: number) => {
      const body = nextBody();
      const sentAt = performance.now();
      inFlight++;
      const req = httpsRequest(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
          });
          res.on('end', () => {
            const now = performance.now();
            lastResponse = now;
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) non2xx++;
            else if (!text.includes(expected)) mismatches++;
            else {
              responses2xx++;
              latencies.record(now - sentAt);
              fromSchedule.record(now - due);
            }
            settle(req);
          });
        },
      );
      pending.add(req);
      req.on('error', () => {
        if (done) return;
        errors++;
        settle(req);
      });
      req.end(body);
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + sent * intervalMs <= now) {
        send(start + sent * intervalMs);
        sent++;
      }
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * intervalMs - performance.now()));
      else if (inFlight > 0) grace = setTimeout(finish, GRACE_MS);
    };
    setTimeout(tick, 10);
  });
}

function isRequest(message: unknown): message is GeneratorRequest {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Record<string, unknown>;
  if (m.type === 'exit') return true;
  if (m.type !== 'run' || typeof m.id !== 'number' || typeof m.spec !== 'object' || m.spec === null) return false;
  const stream = (m.spec as Record<string, unknown>).stream;
  return typeof stream === 'string' && isStreamName(stream);
}

function send(reply: GeneratorReply): void {
  process.send?.(reply);
}

if (!process.send) {
  process.stderr.write('bench/load-generator.ts runs as a child of bench/run.ts\n');
  process.exit(2);
}

process.on('message', (message: unknown) => {
  if (!isRequest(message)) return;
  if (message.type === 'exit') {
    process.disconnect();
    return;
  }
  const run = message.spec.pacing === 'even' ? runEven : runLoad;
  run(message.spec).then(
    (result) => send({ type: 'result', id: message.id, result }),
    (error: unknown) => send({ type: 'error', id: message.id, message: error instanceof Error ? error.message : String(error) }),
  );
});
