/**
 * Certificate authority and serving certificates for the webhook's TLS endpoint.
 *
 * Keys come from Node's asynchronous key generation (RSA generation takes long enough
 * to stall admission requests if it ran on the event loop); certificates are built and
 * signed with node-forge. The clock is always passed in, so callers and tests decide
 * what "now" is.
 */
import { X509Certificate, createPrivateKey, generateKeyPair, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import forge from 'node-forge';

/** A certificate and its private key, both PEM encoded. */
export interface PemPair {
  cert: string;
  key: string;
}

/** Options for {@link generateCertificateAuthority}. */
export interface CertificateAuthorityOptions {
  /** Subject common name; defaults to "replica-guard-ca". */
  commonName?: string;
  /** Lifetime in days from `now`; defaults to ten years. */
  validityDays?: number;
  /** The current time: the certificate's validity starts from it. */
  now: Date;
}

/** Options for {@link generateServingCertificate}. */
export interface ServingCertificateOptions {
  /** Host names clients use; each becomes a DNS subject alternative name. */
  dnsNames: string[];
  /** IPv4 or IPv6 addresses clients use; each becomes an IP subject alternative name. */
  ipAddresses: string[];
  /** Lifetime in days from `now`, cut short at the CA's own expiry; defaults to 365. */
  validityDays?: number;
  /** The current time: the certificate's validity starts from it. */
  now: Date;
}

/** What a certificate says about itself, as far as serving TLS is concerned. */
export interface CertificateDescription {
  notBefore: Date;
  notAfter: Date;
  /** DNS subject alternative names, as written in the certificate. */
  dnsNames: string[];
  /** IP subject alternative names, in canonical text form (RFC 5952 for IPv6). */
  ipAddresses: string[];
  isCA: boolean;
}

const DEFAULT_CA_NAME = 'replica-guard-ca';
const DEFAULT_CA_DAYS = 3650;
const DEFAULT_SERVING_DAYS = 365;
const DAY_MS = 86_400_000;
// The apiserver's clock may run a little behind ours; a certificate that is "not yet
// valid" for it would fail every admission call until the clocks agree.
const BACKDATE_MS = 60 * 60 * 1000;
// The X.520 upper bound for a common name; longer host names go only into the SANs.
const MAX_COMMON_NAME = 64;
const SERIAL_BYTES = 16;
const SAN_DNS = 2;
const SAN_IP = 7;
const DNS_NAME = /^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

const generateKeyPairAsync = promisify(generateKeyPair);

/** Creates a self-signed certificate authority with a fresh RSA 2048 key. */
export async function generateCertificateAuthority(opts: CertificateAuthorityOptions): Promise<PemPair> {
  const validityDays = checkValidityDays(opts.validityDays ?? DEFAULT_CA_DAYS);
  const keys = await newRsaKeyPair();
  const subject = [{ name: 'commonName', value: opts.commonName ?? DEFAULT_CA_NAME }];

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKey);
  cert.serialNumber = randomSerial();
  setValidity(cert, opts.now, addDays(opts.now, validityDays));
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKey), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: keys.privateKey };
}

/**
 * Issues a TLS server certificate from `ca` for the given names and addresses, with a
 * fresh RSA 2048 key. Go's TLS client (the apiserver's) ignores the common name, so a
 * host is accepted only if it appears among `dnsNames` or `ipAddresses`.
 *
 * @throws if no name or address is given, one is malformed, or `ca` is not a CA whose
 *   RSA key matches its certificate.
 */
export async function generateServingCertificate(
  ca: PemPair,
  opts: ServingCertificateOptions,
): Promise<PemPair & { notAfter: Date }> {
  const validityDays = checkValidityDays(opts.validityDays ?? DEFAULT_SERVING_DAYS);
  const dnsNames = uniqueDnsNames(opts.dnsNames);
  const ipAddresses = uniqueIpAddresses(opts.ipAddresses);
  if (dnsNames.length === 0 && ipAddresses.length === 0) {
    throw new Error('a serving certificate needs at least one DNS name or IP address');
  }
  const issuer = loadIssuer(ca);
  const keys = await newRsaKeyPair();

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKey);
  cert.serialNumber = randomSerial();
  // A certificate outliving its issuer would still be refused, so do not claim more.
  const wanted = addDays(opts.now, validityDays);
  setValidity(cert, opts.now, wanted < issuer.notAfter ? wanted : issuer.notAfter);
  const commonName = dnsNames.find((name) => name.length <= MAX_COMMON_NAME);
  cert.setSubject(commonName === undefined ? [] : [{ name: 'commonName', value: commonName }]);
  cert.setIssuer(issuer.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      // RFC 5280: with an empty subject the names exist only here, so mark them critical.
      critical: commonName === undefined,
      altNames: [
        ...dnsNames.map((value) => ({ type: SAN_DNS, value })),
        ...ipAddresses.map((ip) => ({ type: SAN_IP, ip })),
      ],
    },
    // forge's `keyIdentifier: true` would take the new certificate's own key, so the
    // identifier of the issuing CA is passed explicitly.
    { name: 'authorityKeyIdentifier', keyIdentifier: issuer.keyIdentifier },
  ]);
  cert.sign(issuer.key, forge.md.sha256.create());

  const pem = forge.pki.certificateToPem(cert);
  return { cert: pem, key: keys.privateKey, notAfter: new X509Certificate(pem).validToDate };
}

/**
 * Reads the fields of a PEM certificate that matter for serving TLS. Only the first
 * certificate of a bundle is described.
 *
 * @throws if `pem` does not hold a certificate.
 */
export function describeCertificate(pem: string): CertificateDescription {
  const x509 = new X509Certificate(pem);
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const [kind, value] of parseSubjectAltName(x509.subjectAltName ?? '')) {
    if (kind === 'DNS') dnsNames.push(value);
    else if (kind === 'IP Address') ipAddresses.push(canonicalIp(value));
  }
  return { notBefore: x509.validFromDate, notAfter: x509.validToDate, dnsNames, ipAddresses, isCA: x509.ca };
}

/**
 * The canonical text form of an IP address: dotted quad for IPv4, RFC 5952 for IPv6
 * (so "0:0:0:0:0:0:0:1" and "::1" compare equal).
 *
 * @throws if `ip` is not an IPv4 or IPv6 address.
 */
export function canonicalIp(ip: string): string {
  const version = isIP(ip);
  if (version === 4) return ip;
  // Zone identifiers ("fe80::1%eth0") pass isIP but have no place in a certificate.
  if (version === 6 && !ip.includes('%')) {
    // The URL parser already implements RFC 5952; it also rewrites an embedded IPv4
    // tail into hex groups, which forge's IPv6 encoder would otherwise misread.
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  }
  throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
}

interface Issuer {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  keyIdentifier: string;
  notAfter: Date;
}

function loadIssuer(ca: PemPair): Issuer {
  const x509 = new X509Certificate(ca.cert);
  if (!x509.ca) throw new Error('the issuing certificate is not a certificate authority');
  if (!x509.checkPrivateKey(createPrivateKey(ca.key))) {
    throw new Error('the CA private key does not belong to the CA certificate');
  }
  let cert: forge.pki.Certificate;
  let key: forge.pki.rsa.PrivateKey;
  try {
    cert = forge.pki.certificateFromPem(ca.cert);
    key = forge.pki.privateKeyFromPem(ca.key);
  } catch (error) {
    throw new Error(`the CA must use an RSA key: ${errorMessage(error)}`, { cause: error });
  }
  return { cert, key, keyIdentifier: subjectKeyIdentifier(cert), notAfter: x509.validToDate };
}

/** The CA's own key identifier if it declares one, else the one forge would compute. */
function subjectKeyIdentifier(cert: forge.pki.Certificate): string {
  const declared: unknown = cert.getExtension('subjectKeyIdentifier');
  if (typeof declared === 'object' && declared !== null && 'subjectKeyIdentifier' in declared) {
    const hex = declared.subjectKeyIdentifier;
    if (typeof hex === 'string' && hex.length > 0) return forge.util.hexToBytes(hex);
  }
  return cert.generateSubjectKeyIdentifier().getBytes();
}

async function newRsaKeyPair(): Promise<{ publicKey: string; privateKey: string }> {
  return generateKeyPairAsync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/**
 * A random positive serial. RFC 5280 requires a positive integer, and Go rejects an
 * INTEGER with a redundant leading zero byte, so the first byte has its sign bit
 * cleared and is never zero.
 */
function randomSerial(): string {
  const bytes = randomBytes(SERIAL_BYTES);
  const first = (bytes[0] ?? 0) & 0x7f;
  bytes[0] = first === 0 ? 1 : first;
  return bytes.toString('hex');
}

function setValidity(cert: forge.pki.Certificate, now: Date, notAfter: Date): void {
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = notAfter;
}

function addDays(date: Date, days: number): Date {
  return new Date(date.getTime() + days * DAY_MS);
}

function checkValidityDays(days: number): number {
  if (!Number.isFinite(days) || days <= 0) {
    throw new Error(`validityDays must be a positive number, got ${days}`);
  }
  return days;
}

function uniqueDnsNames(names: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const name of names) {
    if (name.length > 253 || !DNS_NAME.test(name)) {
      throw new Error(`not a DNS name: ${JSON.stringify(name)}`);
    }
    const key = name.toLowerCase();
    if (!seen.has(key)) {
      seen.add(key);
      out.push(name);
    }
  }
  return out;
}

function uniqueIpAddresses(addresses: string[]): string[] {
  return [...new Set(addresses.map(canonicalIp))];
}

/**
 * Splits Node's rendering of subjectAltName ("DNS:a, IP Address:1.2.3.4"). Node quotes
 * a value as a JSON string when it holds a comma or quote, so a hostile name cannot
 * pass for two entries.
 */
function parseSubjectAltName(text: string): Array<[string, string]> {
  const entries: Array<[string, string]> = [];
  const entry = /([^:,]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  let match: RegExpExecArray | null;
  while (entry.lastIndex < text.length && (match = entry.exec(text)) !== null) {
    const kind = match[1] ?? '';
    const raw = match[2] ?? '';
    entries.push([kind, raw.startsWith('"') ? String(JSON.parse(raw)) : raw]);
  }
  return entries;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
