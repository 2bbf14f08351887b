import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, generateKeyPair } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { type FetchLike, nodeFetch } from '../../src/cluster/kube-http.ts';
import { generateCertificateAuthority, generateServingCertificate } from '../../src/tls/certificates.ts';
import { type ClusterTools, clusterTools } from '../setup/cluster-tools.ts';

const execFileAsync = promisify(execFile);
const generateKeyPairAsync = promisify(generateKeyPair);

/** An identity of the test API server's static token file. */
export interface Identity {
  readonly user: string;
  readonly groups: readonly string[];
  readonly token: string;
}

/** `system:serviceaccount:NS:NAME` with the groups the API server gives a service account's token. */
export function serviceAccountIdentity(namespace: string, name: string): Identity {
  return {
    user: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
    token: `sa-${namespace}-${name}-token`,
  };
}

/** The cluster administrator: `system:masters`, outside every agent pattern. */
export const ADMIN: Identity = { user: 'test-admin', groups: ['system:masters', 'system:authenticated'], token: 'admin-token' };

/** What the guard runs as in the tier: a plain user bound to the guard's ClusterRole. */
export const GUARD: Identity = { user: 'replica-guard', groups: ['system:authenticated'], token: 'guard-token' };

/** The agents the tier's tests act as. */
export const AGENTS = {
  agent1: serviceAccountIdentity('agents', 'agent-1'),
  agent2: serviceAccountIdentity('agents', 'agent-2'),
  builder: serviceAccountIdentity('builds', 'builder'),
} as const;

/** A JSON answer of the API server. */
export interface ApiAnswer<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
}

/** One call to the API server as an identity. */
export interface ApiCall {
  readonly method?: string;
  readonly body?: unknown;
  readonly contentType?: string;
}

/** A loopback port free now (for a server whose address must be known before it starts). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A child process with its combined output kept for error messages. */
interface Running {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | null>;
}

function startProcess(command: string, args: readonly string[]): Running {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function stopProcess(running: Running | undefined): Promise<void> {
  if (running === undefined || running.child.exitCode !== null || running.child.signalCode !== null) return;
  running.child.kill('SIGTERM');
  const timer = setTimeout(() => running.child.kill('SIGKILL'), 10_000);
  await running.exited;
  clearTimeout(timer);
}

/** Polls `probe` until it resolves true, failing with `describe()` after `timeoutMs`. */
async function until(probe: () => Promise<boolean>, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(describe());
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A kubeconfig for `identity` against `server`, trusting `caPem`. */
function kubeconfig(server: string, caPem: string, identity: Identity): string {
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: identity.user, user: { token: identity.token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: identity.user } }],
    'current-context': 'test',
  });
}

function csvField(value: string): string {
  return `"${value.replaceAll('"', '""')}"`;
}

/**
 * A real kube-apiserver backed by a real etcd on loopback ports, as the test tier runs
 * it: RBAC, a static token file, a service-account signing key (TokenRequest works),
 * and the admission plugins the guard depends on. No controller manager runs, so what a
 * test reads back is exactly what admission let the API server store.
 */
export class ControlPlane {
  readonly tools: ClusterTools;
  readonly dir: string;
  readonly url: string;
  readonly caPem: string;
  private readonly etcdPort: number;
  private readonly apiPort: number;
  private readonly http: { readonly fetch: FetchLike; readonly close: () => void };
  private etcd: Running | undefined;
  private apiserver: Running | undefined;

  private constructor(init: { tools: ClusterTools; dir: string; apiPort: number; etcdPort: number; caPem: string }) {
    this.tools = init.tools;
    this.dir = init.dir;
    this.apiPort = init.apiPort;
    this.etcdPort = init.etcdPort;
    this.caPem = init.caPem;
    this.url = `https://127.0.0.1:${init.apiPort}`;
    this.http = nodeFetch({ ca: init.caPem });
  }

  /** Starts etcd and the API server, and waits until the API server is ready. */
  static async start(identities: readonly Identity[] = Object.values(AGENTS)): Promise<ControlPlane> {
    const tools = clusterTools();
    const dir = await mkdtemp(join(tmpdir(), 'rg-control-plane-'));
    const [apiPort, etcdPort] = [await freePort(), await freePort()];
    const now = new Date();
    const ca = await generateCertificateAuthority({ commonName: 'test-cluster-ca', now });
    const serving = await generateServingCertificate(ca, { dnsNames: ['localhost', 'kubernetes.default.svc'], ipAddresses: ['127.0.0.1'], now });
    const sa = await generateKeyPairAsync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const tokens = [ADMIN, GUARD, ...identities]
      .map((id, i) => [id.token, id.user, `uid-${i}`, csvField(id.groups.join(','))].join(','))
      .join('\n');
    await Promise.all([
      writeFile(join(dir, 'ca.crt'), ca.cert),
      writeFile(join(dir, 'apiserver.crt'), serving.cert),
      writeFile(join(dir, 'apiserver.key'), serving.key),
      writeFile(join(dir, 'sa.pub'), sa.publicKey),
      writeFile(join(dir, 'sa.key'), sa.privateKey),
      writeFile(join(dir, 'tokens.csv'), `${tokens}\n`),
    ]);
    const plane = new ControlPlane({ tools, dir, apiPort, etcdPort, caPem: ca.cert });
    for (const id of [ADMIN, GUARD, ...identities]) await writeFile(plane.kubeconfigPath(id), kubeconfig(plane.url, ca.cert, id));
    try {
      await plane.startEtcd();
      await plane.startApiserver();
    } catch (error) {
      await plane.stop();
      throw error;
    }
    return plane;
  }

  /** The kubeconfig file of an identity (written at start for every known identity, by {@link writeKubeconfig} for others). */
  kubeconfigPath(identity: Identity): string {
    // Named by a hash: a TokenRequest token is longer than a file name may be.
    return join(this.dir, `${createHash('sha256').update(identity.token).digest('hex').slice(0, 16)}.kubeconfig`);
  }

  /** Writes the kubeconfig of an identity the API server did not know at start (a minted token); returns its path. */
  async writeKubeconfig(identity: Identity): Promise<string> {
    const path = this.kubeconfigPath(identity);
    await writeFile(path, kubeconfig(this.url, this.caPem, identity));
    return path;
  }

  /** A token of a ServiceAccount through TokenRequest (as the kubelet mounts one), as an identity. */
  async serviceAccountToken(namespace: string, name: string, expirationSeconds = 3600): Promise<Identity> {
    const request = await this.must<{ status: { token: string } }>(ADMIN, `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
    });
    return { ...serviceAccountIdentity(namespace, name), token: request.status.token };
  }

  private async startEtcd(): Promise<void> {
    const peerPort = await freePort();
    await mkdir(join(this.dir, 'etcd'), { recursive: true });
    const etcd = startProcess(this.tools.etcd, [
      '--data-dir',
      join(this.dir, 'etcd'),
      '--listen-client-url',
      `http://127.0.0.1:${this.etcdPort}`,
      '--listen-peer-url',
      `http://127.0.0.1:${peerPort}`,
    ]);
    this.etcd = etcd;
    await until(
      async () => {
        if (etcd.child.exitCode !== null) throw new Error('etcd exited');
        return etcd.output().includes('etcd ready');
      },
      30_000,
      () => `etcd did not become ready: ${etcd.output()}`,
    );
  }

  private apiserverArgs(): string[] {
    const d = this.dir;
    return [
      `--etcd-servers=http://127.0.0.1:${this.etcdPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.apiPort}`,
      `--tls-cert-file=${join(d, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(d, 'apiserver.key')}`,
      `--client-ca-file=${join(d, 'ca.crt')}`,
      `--token-auth-file=${join(d, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-key-file=${join(d, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(d, 'sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy',
      // No controller manager creates the namespaces' default service accounts, which
      // this plugin would require of every pod; nothing the guard does depends on it.
      '--disable-admission-plugins=ServiceAccount',
      `--cert-dir=${join(d, 'apiserver-certs')}`,
      '--v=0',
    ];
  }

  private async startApiserver(): Promise<void> {
    const apiserver = startProcess(this.tools.kubeApiserver, this.apiserverArgs());
    this.apiserver = apiserver;
    await until(
      async () => {
        if (apiserver.child.exitCode !== null) throw new Error('kube-apiserver exited');
        return (await this.api(ADMIN, '/readyz')).status === 200;
      },
      90_000,
      () => `kube-apiserver did not become ready: ${apiserver.output()}`,
    );
  }

  /** Stops the API server alone and starts it again on the same port and etcd. */
  async restartApiserver(downForMs = 0): Promise<void> {
    await stopProcess(this.apiserver);
    if (downForMs > 0) await new Promise((r) => setTimeout(r, downForMs));
    await this.startApiserver();
  }

  /** What the API server printed (the last 20,000 characters). */
  apiserverOutput(): string {
    return this.apiserver?.output() ?? '';
  }

  /** A request to the API server as `identity`; the body is parsed as JSON when it is. */
  async api<T = Record<string, unknown>>(identity: Identity, path: string, call: ApiCall = {}): Promise<ApiAnswer<T>> {
    const init: RequestInit = {
      method: call.method ?? (call.body === undefined ? 'GET' : 'POST'),
      headers: {
        authorization: `Bearer ${identity.token}`,
        accept: 'application/json',
        ...(call.body === undefined ? {} : { 'content-type': call.contentType ?? 'application/json' }),
      },
      ...(call.body === undefined ? {} : { body: typeof call.body === 'string' ? call.body : JSON.stringify(call.body) }),
    };
    const res = await this.http.fetch(`${this.url}${path}`, init);
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Plain text (readyz, an error from a proxy): kept as it is.
    }
    return { status: res.status, body: body as T };
  }

  /** Like {@link api}, failing unless the status is 2xx. */
  async must<T = Record<string, unknown>>(identity: Identity, path: string, call: ApiCall = {}): Promise<T> {
    const answer = await this.api<T>(identity, path, call);
    if (answer.status < 200 || answer.status > 299) {
      throw new Error(`${call.method ?? 'GET'} ${path} as ${identity.user}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  }

  /** Runs the real kubectl as `identity`; resolves with its exit code and output, never rejects. */
  async kubectl(identity: Identity, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await execFileAsync(this.tools.kubectl, ['--kubeconfig', this.kubeconfigPath(identity), ...args], {
        timeout: 60_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(error) };
    }
  }

  /** Creates a namespace (as the admin) unless it exists. */
  async ensureNamespace(name: string): Promise<void> {
    const answer = await this.api(ADMIN, '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
    if (answer.status !== 201 && answer.status !== 409) throw new Error(`namespace ${name}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
  }

  /** Stops the API server and etcd and removes their files. */
  async stop(): Promise<void> {
    await stopProcess(this.apiserver);
    await stopProcess(this.etcd);
    this.http.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
