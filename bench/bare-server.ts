// The ceiling for this stack: a bare Node HTTPS server that reads the review, parses it,
// checks the envelope and answers a constant "allowed" verdict echoing the uid.
// Usage: node bench/bare-server.ts KEY_FILE CERT_FILE
// Prints one JSON line {"port": N} once listening; stops on SIGTERM or SIGINT.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';

const [keyFile, certFile] = process.argv.slice(2);
if (!keyFile || !certFile) {
  process.stderr.write('usage: node bench/bare-server.ts KEY_FILE CERT_FILE\n');
  process.exit(2);
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function uidOf(text: string): string | undefined {
  const review: unknown = JSON.parse(text);
  if (typeof review !== 'object' || review === null) return undefined;
  const r = review as Record<string, unknown>;
  if (r.apiVersion !== 'admission.k8s.io/v1' || r.kind !== 'AdmissionReview') return undefined;
  const request = r.request;
  if (typeof request !== 'object' || request === null) return undefined;
  const uid = (request as Record<string, unknown>).uid;
  return typeof uid === 'string' && uid !== '' ? uid : undefined;
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'POST') {
    reply(res, 404, '{"message":"not found"}');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let uid: string | undefined;
    try {
      uid = uidOf(Buffer.concat(chunks).toString('utf8'));
    } catch {
      reply(res, 400, '{"message":"not JSON"}');
      return;
    }
    if (uid === undefined) {
      reply(res, 400, '{"message":"not an admission.k8s.io/v1 AdmissionReview with a request.uid"}');
      return;
    }
    reply(res, 200, JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } }));
  });
}

const server = createServer(
  { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), keepAliveTimeout: 120_000 },
  handle,
);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

const stop = (): void => {
  server.close();
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
