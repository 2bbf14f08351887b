/**
 * The directory holding the webhook's TLS material, laid out as cert-manager and
 * Kubernetes TLS secrets lay it out: ca.crt, ca.key, tls.crt, tls.key.
 *
 * With ca.key present the directory is ours: the serving certificate is re-issued from
 * the same CA whenever it no longer fits (so the CA bundle already given to the
 * apiserver keeps working), and the whole set is replaced only if the CA itself is
 * unusable. Without ca.key the material belongs to someone else (cert-manager, a chart,
 * an operator) and is never written to.
 */
import { X509Certificate, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  canonicalIp,
  generateCertificateAuthority,
  generateServingCertificate,
  type PemPair,
} from './certificates.ts';

/** The subset of a pino logger this module writes to. */
export interface CertificateLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Options for {@link ensureCertificates}. */
export interface EnsureCertificatesOptions {
  /** Host names the serving certificate must cover. */
  dnsNames: string[];
  /** IP addresses the serving certificate must cover. */
  ipAddresses: string[];
  /** The current time. */
  now: Date;
  /** A managed certificate this close to expiry is replaced; defaults to 30 days. */
  renewBeforeDays?: number;
  logger?: CertificateLogger;
}

/** Where the four files live. */
export interface CertificatePaths {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

/** The TLS material to serve with, as found or made by {@link ensureCertificates}. */
export interface CertificateFiles {
  /** PEM contents of ca.crt: the bundle a webhook configuration's caBundle carries. */
  caCert: string;
  /** PEM contents of tls.crt. */
  cert: string;
  /** PEM contents of tls.key. */
  key: string;
  /** When the chain stops being valid: the earliest expiry of tls.crt and its CA. */
  notAfter: Date;
  /** True when tls.crt was written by this call (newly generated or re-issued). */
  generated: boolean;
  paths: CertificatePaths;
}

/** The file names, as cert-manager and `kubernetes.io/tls` secrets use them. */
export const CERTIFICATE_FILE_NAMES: Readonly<CertificatePaths> = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  cert: 'tls.crt',
  key: 'tls.key',
};

const DEFAULT_RENEW_BEFORE_DAYS = 30;
const DAY_MS = 86_400_000;
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\s*/g;
const HOST_CHECK = { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false } as const;

/** The paths of the four files inside `dir`. */
export function certificatePaths(dir: string): CertificatePaths {
  return {
    caCert: join(dir, CERTIFICATE_FILE_NAMES.caCert),
    caKey: join(dir, CERTIFICATE_FILE_NAMES.caKey),
    cert: join(dir, CERTIFICATE_FILE_NAMES.cert),
    key: join(dir, CERTIFICATE_FILE_NAMES.key),
  };
}

/**
 * Makes sure `dir` holds a CA and a serving certificate for the requested names, and
 * returns them.
 *
 * - Nothing there: generates a CA and a serving certificate (creating `dir`).
 * - ca.key there (our own CA): reuses everything if it parses, chains, covers every
 *   requested name and address and does not expire within `renewBeforeDays`; re-issues
 *   only the serving certificate if the CA is still good; otherwise replaces all four.
 * - No ca.key but other files (someone else's CA): uses ca.crt, tls.crt and tls.key as
 *   they are, never writing to them.
 *
 * Keys are written with mode 0600, and every file is replaced atomically.
 *
 * @throws if material without ca.key is incomplete, invalid, expired or does not cover
 *   the requested names; the message names the offending file.
 */
export async function ensureCertificates(dir: string, opts: EnsureCertificatesOptions): Promise<CertificateFiles> {
  const renewBeforeDays = opts.renewBeforeDays ?? DEFAULT_RENEW_BEFORE_DAYS;
  if (!Number.isFinite(renewBeforeDays) || renewBeforeDays < 0) {
    throw new Error(`renewBeforeDays must be a non-negative number, got ${renewBeforeDays}`);
  }
  const want: Wanted = {
    dnsNames: opts.dnsNames,
    ipAddresses: opts.ipAddresses.map(canonicalIp),
    now: opts.now,
    renewAt: new Date(opts.now.getTime() + renewBeforeDays * DAY_MS),
    renewBeforeDays,
  };
  const paths = certificatePaths(dir);
  const log = opts.logger;

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const [caCert, caKey, cert, key] = await Promise.all([
    readOptional(paths.caCert),
    readOptional(paths.caKey),
    readOptional(paths.cert),
    readOptional(paths.key),
  ]);
  const files: Found = { caCert, caKey, cert, key };

  if (caKey === undefined && (caCert !== undefined || cert !== undefined || key !== undefined)) {
    return useProvided(paths, files, want, log);
  }
  if (caKey === undefined) {
    return generateAll(paths, want, log);
  }

  const ca = inspectAuthority(paths, caCert, caKey, want);
  if (typeof ca === 'string') {
    log?.warn(
      { dir, reason: ca },
      'replacing the certificate authority: webhook configurations need the new ca.crt as caBundle',
    );
    return generateAll(paths, want, log);
  }

  const serving = inspectServing(paths, ca.bundle, cert, key, want);
  const problem = typeof serving === 'string' ? serving : expiryProblem(serving, want, want.renewAt);
  if (typeof serving !== 'string' && problem === undefined) {
    log?.info({ dir, paths, notAfter: serving.notAfter.toISOString() }, 'reusing TLS certificates');
    return { ...serving.pair, caCert: ca.bundleText, notAfter: serving.notAfter, generated: false, paths };
  }

  let issued: PemPair & { notAfter: Date };
  try {
    issued = await generateServingCertificate(ca.signer, {
      dnsNames: want.dnsNames,
      ipAddresses: want.ipAddresses,
      now: want.now,
    });
  } catch (error) {
    throw new Error(`cannot issue a serving certificate from ${paths.caCert}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  // Key before certificate: an interruption in between leaves a mismatched pair, which
  // the next start detects and re-issues, never a certificate with someone else's key.
  await writeAtomically(paths.key, issued.key, KEY_MODE);
  await writeAtomically(paths.cert, issued.cert, CERT_MODE);
  const notAfter = earliest(issued.notAfter, ca.notAfter);
  log?.info(
    { dir, paths, notAfter: notAfter.toISOString(), reason: problem },
    're-issued the serving certificate from the existing certificate authority',
  );
  return { caCert: ca.bundleText, cert: issued.cert, key: issued.key, notAfter, generated: true, paths };
}

interface Wanted {
  dnsNames: string[];
  ipAddresses: string[];
  now: Date;
  renewAt: Date;
  renewBeforeDays: number;
}

interface Found {
  caCert: string | undefined;
  caKey: string | undefined;
  cert: string | undefined;
  key: string | undefined;
}

interface Authority {
  /** The CA certificate matching ca.key, with that key. */
  signer: PemPair;
  notAfter: Date;
  /** Every certificate in ca.crt: during a CA rotation the bundle holds old and new. */
  bundle: X509Certificate[];
  bundleText: string;
}

interface Validity {
  /** The latest start of validity along the chain, and the file it comes from. */
  notBefore: Date;
  notBeforeFile: string;
  /** The earliest expiry along the chain, and the file it comes from. */
  notAfter: Date;
  notAfterFile: string;
}

interface Serving extends Validity {
  pair: { cert: string; key: string };
}

/** Problems are returned as text naming the file, so callers choose to repair or fail. */
type Problem = string;

function useProvided(
  paths: CertificatePaths,
  files: Found,
  want: Wanted,
  log: CertificateLogger | undefined,
): CertificateFiles {
  const fail = (problem: Problem): Error =>
    new Error(
      `${problem}. TLS material without ${paths.caKey} is used as provided and never replaced: ` +
        'fix or remove these files.',
    );
  if (files.caCert === undefined) {
    throw fail(`${paths.caCert} is missing: it must hold the CA that signed ${paths.cert}`);
  }
  const bundle = parseBundle(paths.caCert, files.caCert);
  if (typeof bundle === 'string') throw fail(bundle);
  const serving = inspectServing(paths, bundle, files.cert, files.key, want);
  if (typeof serving === 'string') throw fail(serving);
  const expired = expiryProblem(serving, want, want.now);
  if (expired !== undefined) throw fail(expired);
  const fields = { dir: dirname(paths.cert), paths, notAfter: serving.notAfter.toISOString() };
  if (serving.notAfter <= want.renewAt) {
    // Whoever provided it renews it; refusing to start would only make an outage.
    log?.warn(fields, `the provided TLS certificate expires within ${want.renewBeforeDays} days`);
  }
  log?.info(fields, 'using the provided TLS certificates');
  return { ...serving.pair, caCert: files.caCert, notAfter: serving.notAfter, generated: false, paths };
}

async function generateAll(
  paths: CertificatePaths,
  want: Wanted,
  log: CertificateLogger | undefined,
): Promise<CertificateFiles> {
  const ca = await generateCertificateAuthority({ now: want.now });
  const serving = await generateServingCertificate(ca, {
    dnsNames: want.dnsNames,
    ipAddresses: want.ipAddresses,
    now: want.now,
  });
  // Each key before its certificate: see the re-issue path.
  await writeAtomically(paths.caKey, ca.key, KEY_MODE);
  await writeAtomically(paths.caCert, ca.cert, CERT_MODE);
  await writeAtomically(paths.key, serving.key, KEY_MODE);
  await writeAtomically(paths.cert, serving.cert, CERT_MODE);
  log?.info(
    { dir: dirname(paths.cert), paths, notAfter: serving.notAfter.toISOString() },
    'generated a certificate authority and serving certificate',
  );
  return { caCert: ca.cert, cert: serving.cert, key: serving.key, notAfter: serving.notAfter, generated: true, paths };
}

function inspectAuthority(
  paths: CertificatePaths,
  caCertText: string | undefined,
  caKeyText: string,
  want: Wanted,
): Authority | Problem {
  if (caCertText === undefined) return `${paths.caCert} is missing`;
  const bundle = parseBundle(paths.caCert, caCertText);
  if (typeof bundle === 'string') return bundle;
  const key = parseKey(paths.caKey, caKeyText);
  if (typeof key === 'string') return key;
  const index = bundle.findIndex((cert) => cert.ca && matchesKey(cert, key));
  const cert = bundle[index];
  if (cert === undefined) return `${paths.caKey} does not belong to any CA certificate in ${paths.caCert}`;
  const validity = {
    notBefore: cert.validFromDate,
    notBeforeFile: paths.caCert,
    notAfter: cert.validToDate,
    notAfterFile: paths.caCert,
  };
  const expiry = expiryProblem(validity, want, want.renewAt);
  if (expiry !== undefined) return expiry;
  return {
    signer: { cert: cert.toString(), key: caKeyText },
    notAfter: cert.validToDate,
    bundle,
    bundleText: caCertText,
  };
}

/**
 * Checks tls.crt and tls.key against the CA bundle and the requested names. tls.crt may
 * carry intermediates after the leaf (as cert-manager writes it); each must be signed by
 * the next, and the last by (or be) a certificate in ca.crt.
 */
function inspectServing(
  paths: CertificatePaths,
  bundle: X509Certificate[],
  certText: string | undefined,
  keyText: string | undefined,
  want: Wanted,
): Serving | Problem {
  if (certText === undefined) return `${paths.cert} is missing`;
  if (keyText === undefined) return `${paths.key} is missing`;
  const chain = parseCertificates(paths.cert, certText);
  if (typeof chain === 'string') return chain;
  const key = parseKey(paths.key, keyText);
  if (typeof key === 'string') return key;
  const [leaf] = chain;
  if (leaf === undefined) return `${paths.cert} holds no certificate`;
  if (!matchesKey(leaf, key)) return `${paths.key} does not belong to the certificate in ${paths.cert}`;

  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i];
    const parent = chain[i + 1];
    if (child !== undefined && parent !== undefined && !signedBy(child, parent)) {
      return `${paths.cert}: certificate ${i + 1} is not signed by certificate ${i + 2} in the same file`;
    }
  }
  const last = chain[chain.length - 1] ?? leaf;
  const anchor = bundle.find((ca) => ca.raw.equals(last.raw)) ?? bundle.find((ca) => signedBy(last, ca));
  if (anchor === undefined) return `${paths.cert} is not signed by the CA in ${paths.caCert}`;

  const missing = [
    ...want.dnsNames.filter((name) => leaf.checkHost(name, HOST_CHECK) === undefined),
    ...want.ipAddresses.filter((ip) => leaf.checkIP(ip) === undefined),
  ];
  if (missing.length > 0) {
    return `${paths.cert} does not cover ${missing.join(', ')} (subject alternative names: ${leaf.subjectAltName ?? 'none'})`;
  }

  const serving: Serving = {
    pair: { cert: certText, key: keyText },
    notBefore: leaf.validFromDate,
    notBeforeFile: paths.cert,
    notAfter: leaf.validToDate,
    notAfterFile: paths.cert,
  };
  for (const cert of [...chain.slice(1), anchor]) {
    const file = cert === anchor ? paths.caCert : paths.cert;
    if (cert.validFromDate > serving.notBefore) {
      serving.notBefore = cert.validFromDate;
      serving.notBeforeFile = file;
    }
    if (cert.validToDate < serving.notAfter) {
      serving.notAfter = cert.validToDate;
      serving.notAfterFile = file;
    }
  }
  return serving;
}

function expiryProblem(validity: Validity, want: Wanted, deadline: Date): Problem | undefined {
  if (validity.notBefore > want.now) {
    return `${validity.notBeforeFile} is not valid before ${validity.notBefore.toISOString()}`;
  }
  if (validity.notAfter <= want.now) {
    return `${validity.notAfterFile} expired at ${validity.notAfter.toISOString()}`;
  }
  if (validity.notAfter <= deadline) {
    return `${validity.notAfterFile} expires at ${validity.notAfter.toISOString()}, within ${want.renewBeforeDays} days`;
  }
  return undefined;
}

function parseBundle(path: string, text: string): X509Certificate[] | Problem {
  const certs = parseCertificates(path, text);
  if (typeof certs === 'string') return certs;
  return certs.length === 0 ? `${path} holds no certificate` : certs;
}

function parseCertificates(path: string, text: string): X509Certificate[] | Problem {
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return `${path} holds no PEM certificate`;
  const certs: X509Certificate[] = [];
  for (const block of blocks) {
    try {
      certs.push(new X509Certificate(block));
    } catch (error) {
      return `${path} cannot be parsed: ${errorMessage(error)}`;
    }
  }
  return certs;
}

function parseKey(path: string, text: string): KeyObject | Problem {
  try {
    return createPrivateKey(text);
  } catch (error) {
    return `${path} cannot be parsed as a private key: ${errorMessage(error)}`;
  }
}

function matchesKey(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}

function signedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isErrnoException(error) && error.code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Writes through a temporary file in the same directory and renames it into place, so
 * a reader (or a crash) never sees a half-written key or certificate.
 */
export async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temporary, 'wx', mode);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

function earliest(a: Date, b: Date): Date {
  return a < b ? a : b;
}

function isErrnoException(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && 'code' in error;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
