import { X509Certificate } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { type KubeConnection, kubeFetch } from '../cluster/kube-http.ts';
import { certificatePaths, writeAtomically } from './certificate-store.ts';
import { generateCertificateAuthority, generateServingCertificate } from './certificates.ts';
import { bundleCertificates, planRotation, type RotationStep, type SecretMaterial, uncoveredNames } from './rotation-plan.ts';

const DAY_MS = 86_400_000;
/** The Secret's keys: a kubernetes.io/tls Secret's, plus the CA key and the bundle. */
const KEYS = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key', bundle: 'ca-bundle.crt' } as const;

interface SecretObject {
  apiVersion?: string;
  kind?: string;
  type?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

/** Options of {@link SecretCertificates}. */
export interface SecretCertificatesOptions {
  readonly connection: KubeConnection;
  readonly namespace: string;
  readonly secretName: string;
  /** Where the serving files are written for the TLS server (tls.dir). */
  readonly dir: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly renewBeforeDays: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Whether every ready replica serves a certificate signed by `ca` (the Service's endpoints, or this process alone). */
  readonly everyReplicaServes: (ca: X509Certificate) => Promise<boolean>;
  /** The CA bundles (PEM) both webhook configurations carry now; undefined when unknown. */
  readonly servedBundles: () => Promise<readonly string[] | undefined>;
}

/**
 * The self-managed certificates: a CA and serving certificate kept in the guard's Secret,
 * shared by every replica. The first start creates the Secret (a replica that loses the
 * race adopts the winner's); every change is a compare-and-swap on the Secret, so
 * replicas never fight. A rotation puts the new CA into the bundle beside the old one; a
 * replica serves a certificate of the new CA only once both configurations' caBundle
 * trusts it, and the old CA leaves the bundle only when every ready replica serves the new.
 */
export class SecretCertificates {
  readonly #o: SecretCertificatesOptions;
  #material: SecretMaterial | undefined;
  /** The serving pair written to the directory, by certificate text. */
  #written: string | undefined;

  constructor(options: SecretCertificatesOptions) {
    this.#o = options;
  }

  /** The caBundle (base64) both configurations must carry; undefined before the first read. */
  caBundle(): string | undefined {
    return this.#material === undefined ? undefined : Buffer.from(this.#material.bundle).toString('base64');
  }

  /** The material as last read from the Secret. */
  material(): SecretMaterial | undefined {
    return this.#material;
  }

  /** Creates or adopts the Secret and writes the serving files: call before serving. */
  async start(): Promise<void> {
    // A CA key in the directory means a CA of its own (`replica-guard certs create`): the
    // Secret's files would be mixed with it, and the TLS layer would replace both.
    const caKey = certificatePaths(this.#o.dir).caKey;
    if (await exists(caKey)) {
      throw new Error(`${caKey} exists: the directory holds a CA of its own, so certificates from the Secret ${this.#o.secretName} cannot be served from it; use another tls.dir, or certificates.mode external to serve the directory as it is`);
    }
    let secret = await this.#read();
    if (secret === undefined) secret = await this.#create();
    this.#material = await this.#coveringNames(secret);
    await this.#writeFiles(true);
  }

  /**
   * The Secret's material, its serving certificate re-issued first (compare-and-swap) when
   * it does not cover this replica's names: the TLS layer refuses to serve a certificate
   * that lacks a configured name, so waiting for the first tick would be a failed start
   * (after `helm upgrade` added a name, for instance). Same CA, so every bundle that
   * trusted the old certificate trusts the new one. Expiry is left to {@link tick}.
   */
  async #coveringNames(secret: SecretObject): Promise<SecretMaterial> {
    const current = materialOf(secret);
    const missing = uncoveredNames(new X509Certificate(current.cert), this.#o.dnsNames, this.#o.ipAddresses);
    if (missing.length === 0) return current;
    const step: RotationStep = { step: 'reissue', reason: `the serving certificate does not cover ${missing.join(', ')}` };
    const next = await this.#apply(current, step);
    if (await this.#update(secret, next)) {
      this.#o.logger.info({ secret: this.#o.secretName, step: step.step, reason: step.reason }, 'rotated the self-managed certificates');
      return next;
    }
    // Another replica wrote first: theirs is the one to serve.
    const theirs = await this.#read();
    return theirs === undefined ? current : materialOf(theirs);
  }

  #plan(current: SecretMaterial, everyReplicaServesCurrent: boolean): RotationStep {
    return planRotation(current, {
      now: this.#o.clock.now(),
      renewBeforeMs: this.#o.renewBeforeDays * DAY_MS,
      dnsNames: [...this.#o.dnsNames],
      ipAddresses: [...this.#o.ipAddresses],
      everyReplicaServesCurrent,
    });
  }

  /** One round: rotate what needs it (compare-and-swap), then serve what the bundles trust. */
  async tick(): Promise<RotationStep> {
    const secret = await this.#read();
    if (secret === undefined) {
      // Deleted by someone: make a new one (the configurations then get its bundle).
      this.#material = materialOf(await this.#create());
      await this.#writeFiles(false);
      return { step: 'new-ca', reason: 'the Secret was deleted' };
    }
    const current = materialOf(secret);
    this.#material = current;
    const ca = new X509Certificate(current.caCert);
    const multi = bundleCertificates(current.bundle).length > 1;
    const step = this.#plan(current, multi ? await this.#o.everyReplicaServes(ca) : false);
    if (step.step !== 'none') {
      const next = await this.#apply(current, step);
      const written = await this.#update(secret, next);
      if (written) {
        this.#material = next;
        this.#o.logger.info({ secret: this.#o.secretName, step: step.step, reason: 'reason' in step ? step.reason : undefined }, 'rotated the self-managed certificates');
      }
    }
    await this.#writeFiles(false);
    return step;
  }

  async #apply(current: SecretMaterial, step: RotationStep): Promise<SecretMaterial> {
    const now = this.#o.clock.now();
    const names = { dnsNames: [...this.#o.dnsNames], ipAddresses: [...this.#o.ipAddresses], now };
    switch (step.step) {
      case 'reissue': {
        const serving = await generateServingCertificate({ cert: current.caCert, key: current.caKey }, names);
        return { ...current, cert: serving.cert, key: serving.key };
      }
      case 'new-ca': {
        const ca = await generateCertificateAuthority({ now });
        const serving = await generateServingCertificate(ca, names);
        return { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key, bundle: `${current.caCert.trim()}\n${ca.cert}` };
      }
      case 'retire-old-ca':
        return { ...current, bundle: current.caCert };
      case 'none':
        return current;
    }
  }

  /**
   * Writes the serving pair for the TLS server, but only one the configurations trust:
   * its CA must be in every served bundle (unknown bundles, or nothing served yet, do not hold it back).
   */
  async #writeFiles(first: boolean): Promise<void> {
    const m = this.#material;
    if (m === undefined || m.cert === this.#written) return;
    if (!first) {
      const bundles = await this.#o.servedBundles().catch(() => undefined);
      const ca = new X509Certificate(m.caCert);
      const trusted = bundles === undefined || bundles.every((b) => bundleCertificates(b).some((c) => c.raw.equals(ca.raw)));
      if (!trusted) {
        this.#o.logger.info({ secret: this.#o.secretName }, 'a new serving certificate waits until both webhook configurations trust its CA');
        return;
      }
    }
    const paths = certificatePaths(this.#o.dir);
    await mkdir(this.#o.dir, { recursive: true, mode: 0o700 });
    // ca.crt is the bundle; ca.key never leaves the Secret, so the directory is "provided"
    // material that ensureCertificates never re-issues on its own.
    await writeAtomically(paths.caCert, m.bundle, 0o644);
    await writeAtomically(paths.key, m.key, 0o600);
    await writeAtomically(paths.cert, m.cert, 0o644);
    this.#written = m.cert;
  }

  #path(name?: string): string {
    const base = `/api/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/secrets`;
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }

  async #read(): Promise<SecretObject | undefined> {
    const res = await kubeFetch(this.#o.connection, this.#path(this.#o.secretName), { signal: AbortSignal.timeout(10_000) });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`GET Secret ${this.#o.namespace}/${this.#o.secretName}: HTTP ${res.status}${this.#hint(res.status, 'get')}`);
    return (await res.json()) as SecretObject;
  }

  async #create(): Promise<SecretObject> {
    const now = this.#o.clock.now();
    const ca = await generateCertificateAuthority({ now });
    const serving = await generateServingCertificate(ca, { dnsNames: [...this.#o.dnsNames], ipAddresses: [...this.#o.ipAddresses], now });
    const body: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: { name: this.#o.secretName, namespace: this.#o.namespace, labels: { 'app.kubernetes.io/managed-by': 'replica-guard' } },
      data: encode({ caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key, bundle: ca.cert }),
    };
    const res = await kubeFetch(this.#o.connection, this.#path(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status === 201 || res.status === 200) {
      this.#o.logger.info({ secret: this.#o.secretName }, 'created the self-managed CA and serving certificate');
      return (await res.json()) as SecretObject;
    }
    if (res.status === 409) {
      // Another replica created it first: use theirs, so both serve the same certificate.
      const theirs = await this.#read();
      if (theirs !== undefined) return theirs;
    }
    throw new Error(`POST Secret ${this.#o.namespace}/${this.#o.secretName}: HTTP ${res.status}${this.#hint(res.status, 'create')}`);
  }

  /** Compare-and-swap: false when another replica wrote first (its material is read next round). */
  async #update(read: SecretObject, next: SecretMaterial): Promise<boolean> {
    const body: SecretObject = { ...read, data: { ...read.data, ...encode(next) } };
    const res = await kubeFetch(this.#o.connection, this.#path(this.#o.secretName), {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status === 200) return true;
    if (res.status === 409) return false;
    throw new Error(`PUT Secret ${this.#o.namespace}/${this.#o.secretName}: HTTP ${res.status}${this.#hint(res.status, 'update')}`);
  }

  #hint(status: number, verb: string): string {
    return status === 403 ? ` (forbidden: the guard's service account needs "${verb}" on secrets "${this.#o.secretName}" in ${this.#o.namespace})` : '';
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function encode(m: SecretMaterial): Record<string, string> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return { [KEYS.caCert]: b64(m.caCert), [KEYS.caKey]: b64(m.caKey), [KEYS.cert]: b64(m.cert), [KEYS.key]: b64(m.key), [KEYS.bundle]: b64(m.bundle) };
}

/** @throws naming the key when the Secret lacks one (someone else's Secret under this name). */
function materialOf(secret: SecretObject): SecretMaterial {
  const get = (key: string): string => {
    const value = secret.data?.[key];
    if (value === undefined) throw new Error(`Secret ${secret.metadata.name} has no ${key}: it is not the guard's (delete it, or choose another certificates.secret)`);
    return Buffer.from(value, 'base64').toString('utf8');
  };
  const caCert = get(KEYS.caCert);
  return { caCert, caKey: get(KEYS.caKey), cert: get(KEYS.cert), key: get(KEYS.key), bundle: secret.data?.[KEYS.bundle] === undefined ? caCert : get(KEYS.bundle) };
}
