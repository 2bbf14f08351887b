import { X509Certificate } from 'node:crypto';

/** The self-managed material as the guard's Secret holds it (PEM text). */
export interface SecretMaterial {
  /** The CA that signs now. */
  readonly caCert: string;
  readonly caKey: string;
  /** The serving certificate and key. */
  readonly cert: string;
  readonly key: string;
  /** What both webhook configurations' caBundle must carry: the signing CA, and during a rotation the one before it. */
  readonly bundle: string;
}

/** What the Secret needs next. */
export type RotationStep =
  | { readonly step: 'none' }
  /** The serving certificate nears expiry or lacks a name: re-issue it from the same CA. */
  | { readonly step: 'reissue'; readonly reason: string }
  /** The CA nears expiry: a new CA signs a new serving certificate; the bundle carries old and new. */
  | { readonly step: 'new-ca'; readonly reason: string }
  /** Every ready replica serves a certificate of the new CA: the old one leaves the bundle. */
  | { readonly step: 'retire-old-ca' };

/** What the plan looks at besides the material. */
export interface RotationFacts {
  readonly now: Date;
  readonly renewBeforeMs: number;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  /** Whether every ready replica serves a certificate signed by the signing CA. */
  readonly everyReplicaServesCurrent: boolean;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\s*/g;

/** The certificates of a PEM bundle. */
export function bundleCertificates(bundle: string): X509Certificate[] {
  return (bundle.match(PEM_CERTIFICATE) ?? []).map((pem) => new X509Certificate(pem));
}

/**
 * The next step of the Secret's life, a pure function of its material and the facts. A
 * CA is replaced well before it expires, and the bundle keeps the old one until every
 * replica serves the new certificate, so the API server trusts whatever it is served.
 */
export function planRotation(material: SecretMaterial, facts: RotationFacts): RotationStep {
  const ca = new X509Certificate(material.caCert);
  const leaf = new X509Certificate(material.cert);
  const renewAt = facts.now.getTime() + facts.renewBeforeMs;
  const bundle = bundleCertificates(material.bundle);
  if (ca.validToDate.getTime() <= renewAt && bundle.length <= 1) {
    return { step: 'new-ca', reason: `the CA expires at ${ca.validToDate.toISOString()}` };
  }
  if (bundle.length > 1 && facts.everyReplicaServesCurrent && leaf.verify(ca.publicKey)) return { step: 'retire-old-ca' };
  if (!leaf.verify(ca.publicKey)) return { step: 'reissue', reason: 'the serving certificate is not signed by the CA' };
  if (leaf.validToDate.getTime() <= renewAt) return { step: 'reissue', reason: `the serving certificate expires at ${leaf.validToDate.toISOString()}` };
  const missing = uncoveredNames(leaf, facts.dnsNames, facts.ipAddresses);
  if (missing.length > 0) return { step: 'reissue', reason: `the serving certificate does not cover ${missing.join(', ')}` };
  return { step: 'none' };
}

/** The names and addresses a serving certificate does not cover. */
export function uncoveredNames(leaf: X509Certificate, dnsNames: readonly string[], ipAddresses: readonly string[]): string[] {
  return [...dnsNames.filter((n) => leaf.checkHost(n, { subject: 'never' }) === undefined), ...ipAddresses.filter((ip) => leaf.checkIP(ip) === undefined)];
}
