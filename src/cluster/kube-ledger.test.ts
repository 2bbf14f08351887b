import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../clock.ts';
import { recordEpisodeKey } from '../core/ledger-state.ts';
import { KubeLedger, KubeLedgerError, ledgerConfigMapName } from './kube-ledger.ts';

// The HTTP side of the shared ledger, against tiny servers that answer just enough. The
// compare-and-swap behaviour is tested against the fake API server under test/ledger/.

const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

describe('ledgerConfigMapName', () => {
  it('is a bounded DNS-1123 name with a readable hint and a hash, distinct per agent', () => {
    const names = [
      'system:serviceaccount:agents:agent-1',
      'system:serviceaccount:agents:agent_1',
      'system:serviceaccount:agents:Agent-1',
      `system:serviceaccount:${'n'.repeat(63)}:${'a'.repeat(253)}`,
      'alice@example.com',
      ':::',
      '',
    ].map(ledgerConfigMapName);
    for (const n of names) {
      expect(n).toMatch(DNS_1123_SUBDOMAIN);
      expect(n.length).toBeLessThanOrEqual(82);
      expect(n.startsWith('replica-guard-ledger-')).toBe(true);
    }
    expect(new Set(names).size).toBe(names.length);
    expect(names[0]).toMatch(/^replica-guard-ledger-agents-agent-1-[0-9a-f]{20}$/);
    expect(names[5]).toMatch(/^replica-guard-ledger-[0-9a-f]{20}$/);
    expect(ledgerConfigMapName('system:serviceaccount:agents:agent-1')).toBe(names[0]);
  });
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
}

/** Answers like an apiserver that has no ledger yet and accepts the create. */
const emptyApi =
  (seen: { method: string; auth: string | undefined }[]): Handler =>
  (req, res) => {
    seen.push({ method: req.method ?? '', auth: req.headers.authorization });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.method === 'GET') {
        res.statusCode = 404;
        res.end(JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { metadata: Record<string, unknown> };
      res.statusCode = 201;
      res.end(JSON.stringify({ ...body, metadata: { ...body.metadata, resourceVersion: '2' } }));
    });
  };

const write = (ledger: KubeLedger) =>
  ledger.transact('agent', (s) => ({ result: 'ok', next: recordEpisodeKey(s, 'k', new Date(), ledger.limits).state }));

describe('KubeLedger connection', () => {
  it("goes through the connection's fetch and asks for its headers on every call (rotating tokens)", async () => {
    const seen: { method: string; auth: string | undefined }[] = [];
    const port = await listen(createHttpServer(emptyApi(seen)));
    let rotations = 0;
    const fetched: string[] = [];
    const ledger = new KubeLedger({
      connection: {
        baseUrl: `http://127.0.0.1:${port}/`,
        headers: async () => ({ authorization: `Bearer token-${++rotations}` }),
        fetch: (url, init) => {
          fetched.push(`${init.method} ${url}`);
          return fetch(url, init);
        },
      },
      namespace: 'replica-guard',
      clock: systemClock,
    });
    expect(await write(ledger)).toBe('ok');
    expect(seen).toEqual([
      { method: 'GET', auth: 'Bearer token-1' },
      { method: 'POST', auth: 'Bearer token-2' },
    ]);
    expect(fetched).toEqual([
      `GET http://127.0.0.1:${port}/api/v1/namespaces/replica-guard/configmaps/${ledgerConfigMapName('agent')}`,
      `POST http://127.0.0.1:${port}/api/v1/namespaces/replica-guard/configmaps`,
    ]);
  });

  it('sends a static bearer token', async () => {
    const seen: { method: string; auth: string | undefined }[] = [];
    const port = await listen(createHttpServer(emptyApi(seen)));
    const ledger = new KubeLedger({ connection: { baseUrl: `http://127.0.0.1:${port}`, token: 'static' }, namespace: 'rg', clock: systemClock });
    await write(ledger);
    expect(seen.map((s) => s.auth)).toEqual(['Bearer static', 'Bearer static']);
  });
});

describe('KubeLedger failures', () => {
  it('gives up on a call that does not answer within its timeout', async () => {
    const port = await listen(createHttpServer(() => undefined)); // never answers
    const ledger = new KubeLedger({
      connection: { baseUrl: `http://127.0.0.1:${port}` },
      namespace: 'rg',
      clock: systemClock,
      requestTimeoutMs: 100,
    });
    const started = Date.now();
    await expect(write(ledger)).rejects.toThrow(/timed out after 100 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('reports an unexpected status with the Status message', async () => {
    const port = await listen(
      createHttpServer((_req, res) => {
        res.statusCode = 403;
        res.end(JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'configmaps is forbidden: no RBAC' }));
      }),
    );
    const ledger = new KubeLedger({ connection: { baseUrl: `http://127.0.0.1:${port}` }, namespace: 'rg', clock: systemClock });
    const err: unknown = await write(ledger).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeLedgerError);
    expect((err as KubeLedgerError).status).toBe(403);
    expect((err as KubeLedgerError).message).toMatch(/HTTP 403: configmaps is forbidden: no RBAC/);
  });

  it('fails every caller of a round when the API cannot be reached', async () => {
    const closed = createHttpServer();
    const port = await listen(closed);
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    servers.splice(servers.indexOf(closed), 1);
    const ledger = new KubeLedger({ connection: { baseUrl: `http://127.0.0.1:${port}` }, namespace: 'rg', clock: systemClock });
    const results = await Promise.allSettled([write(ledger), write(ledger), write(ledger)]);
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof KubeLedgerError)).toBe(true);
  });
});
