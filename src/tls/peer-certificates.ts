import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { type KubeConnection, kubeFetch } from '../cluster/kube-http.ts';

/** One ready replica, as its Service's EndpointSlices list it. */
export interface Peer {
  readonly address: string;
  readonly port: number;
}

interface EndpointSlice {
  readonly metadata?: { readonly labels?: Record<string, string> };
  readonly ports?: readonly { readonly name?: string; readonly port?: number }[];
  readonly endpoints?: readonly { readonly addresses?: readonly string[]; readonly conditions?: { readonly ready?: boolean } }[];
}

/**
 * The ready replicas behind a Service: the ready endpoints of its EndpointSlices, on the
 * port named `webhook` (or the only port). The label is checked here too, so a server that
 * ignores the selector cannot mix in another Service's endpoints.
 */
export async function readyPeers(connection: KubeConnection, namespace: string, service: string, signal: AbortSignal): Promise<Peer[]> {
  const selector = `kubernetes.io/service-name=${service}`;
  const path = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices?labelSelector=${encodeURIComponent(selector)}`;
  const res = await kubeFetch(connection, path, { signal });
  if (res.status !== 200) {
    const hint = res.status === 403 ? ` (forbidden: the guard's service account needs "list" on endpointslices in ${namespace})` : '';
    throw new Error(`GET ${path}: HTTP ${res.status}${hint}`);
  }
  const list = (await res.json()) as { items?: EndpointSlice[] };
  const peers: Peer[] = [];
  for (const slice of list.items ?? []) {
    if (slice.metadata?.labels?.['kubernetes.io/service-name'] !== service) continue;
    const ports = slice.ports ?? [];
    const port = (ports.find((p) => p.name === 'webhook') ?? (ports.length === 1 ? ports[0] : undefined))?.port;
    if (port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.conditions?.ready === false) continue;
      for (const address of endpoint.addresses ?? []) peers.push({ address, port });
    }
  }
  return peers;
}

/** The certificate a TLS server presents (not verified: only who signed it is asked). */
export function servedCertificate(peer: Peer, timeoutMs: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: peer.address, port: peer.port, rejectUnauthorized: false, servername: undefined });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake with ${peer.address}:${peer.port} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (cert) resolve(cert);
      else reject(new Error(`${peer.address}:${peer.port} presented no certificate`));
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Whether every peer serves a certificate signed by `ca`; the peers that do not, by address. */
export async function peersServe(peers: readonly Peer[], ca: X509Certificate, timeoutMs: number): Promise<{ readonly all: boolean; readonly behind: readonly string[] }> {
  const behind: string[] = [];
  await Promise.all(
    peers.map(async (peer) => {
      try {
        const cert = await servedCertificate(peer, timeoutMs);
        if (!(cert.checkIssued(ca) && cert.verify(ca.publicKey))) behind.push(`${peer.address}:${peer.port}`);
      } catch {
        behind.push(`${peer.address}:${peer.port}`);
      }
    }),
  );
  return { all: behind.length === 0, behind: behind.sort() };
}
