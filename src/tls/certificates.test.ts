import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalIp,
  describeCertificate,
  generateCertificateAuthority,
  generateServingCertificate,
  type PemPair,
} from './certificates.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const FIXED_NOW = new Date('2030-01-01T00:00:00Z');

function extension(pem: string, name: string): Record<string, unknown> {
  const ext: unknown = forge.pki.certificateFromPem(pem).getExtension(name);
  if (typeof ext !== 'object' || ext === null) throw new Error(`no ${name} extension`);
  return { ...ext };
}

/** The serial as unsigned big-endian bytes, as the certificate's DER INTEGER holds them. */
function serialBytes(pem: string): Buffer {
  return Buffer.from(new X509Certificate(pem).serialNumber, 'hex');
}

describe('generateCertificateAuthority', () => {
  let ca: PemPair;
  beforeAll(async () => {
    ca = await generateCertificateAuthority({ now: FIXED_NOW });
  });

  it('is a self-signed CA whose key matches', () => {
    const x509 = new X509Certificate(ca.cert);
    expect(x509.ca).toBe(true);
    expect(x509.subject).toBe('CN=replica-guard-ca');
    expect(x509.checkIssued(x509)).toBe(true);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.checkPrivateKey(createPrivateKey(ca.key))).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(x509.publicKey.asymmetricKeyType).toBe('rsa');
  });

  it('carries critical basic constraints, CA key usages and a key identifier', () => {
    expect(extension(ca.cert, 'basicConstraints')).toMatchObject({ cA: true, critical: true });
    const usage = extension(ca.cert, 'keyUsage');
    expect(usage).toMatchObject({ keyCertSign: true, cRLSign: true });
    expect(usage['digitalSignature']).toBeFalsy();
    expect(extension(ca.cert, 'subjectKeyIdentifier')['subjectKeyIdentifier']).toMatch(/^[0-9a-f]{40}$/);
  });

  it('takes its validity from the given clock, an hour early for clock skew', () => {
    const { notBefore, notAfter } = describeCertificate(ca.cert);
    expect(notBefore.getTime()).toBe(FIXED_NOW.getTime() - HOUR_MS);
    expect(notAfter.getTime()).toBe(FIXED_NOW.getTime() + 3650 * DAY_MS);
  });

  it('has a positive, minimally encoded serial', () => {
    const serial = serialBytes(ca.cert);
    expect(serial.length).toBe(16);
    expect(serial[0]).toBeGreaterThan(0);
    expect(serial[0]).toBeLessThan(0x80);
  });

  it('accepts a common name and validity', async () => {
    const other = await generateCertificateAuthority({ commonName: 'test-ca', validityDays: 2, now: FIXED_NOW });
    expect(new X509Certificate(other.cert).subject).toBe('CN=test-ca');
    expect(describeCertificate(other.cert).notAfter.getTime()).toBe(FIXED_NOW.getTime() + 2 * DAY_MS);
  });

  it('refuses a non-positive validity', async () => {
    await expect(generateCertificateAuthority({ validityDays: 0, now: FIXED_NOW })).rejects.toThrow(/validityDays/);
  });
});

describe('generateServingCertificate', () => {
  let ca: PemPair;
  let serving: PemPair & { notAfter: Date };
  const dnsNames = ['localhost', 'replica-guard.replica-guard.svc'];
  const ipAddresses = ['127.0.0.1', '::1'];

  beforeAll(async () => {
    ca = await generateCertificateAuthority({ now: FIXED_NOW });
    serving = await generateServingCertificate(ca, { dnsNames, ipAddresses, now: FIXED_NOW });
  });

  it('lists every DNS name and IP address as a subject alternative name', () => {
    const x509 = new X509Certificate(serving.cert);
    const sans = (x509.subjectAltName ?? '').split(', ');
    expect(sans).toEqual([
      'DNS:localhost',
      'DNS:replica-guard.replica-guard.svc',
      'IP Address:127.0.0.1',
      'IP Address:0:0:0:0:0:0:0:1',
    ]);
    expect(x509.checkIP('::1')).toBe('::1');
    expect(x509.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x509.checkHost('replica-guard.replica-guard.svc', { subject: 'never' })).toBeDefined();
    expect(x509.subject).toBe('CN=localhost');
  });

  it('is described with its names, addresses and dates', () => {
    expect(describeCertificate(serving.cert)).toEqual({
      notBefore: new Date(FIXED_NOW.getTime() - HOUR_MS),
      notAfter: new Date(FIXED_NOW.getTime() + 365 * DAY_MS),
      dnsNames,
      ipAddresses,
      isCA: false,
    });
    expect(serving.notAfter).toEqual(describeCertificate(serving.cert).notAfter);
  });

  it('chains to the CA and matches its key', () => {
    const x509 = new X509Certificate(serving.cert);
    const issuer = new X509Certificate(ca.cert);
    expect(x509.verify(issuer.publicKey)).toBe(true);
    // OpenSSL's issuer check also compares the authority key identifier with the CA's.
    expect(x509.checkIssued(issuer)).toBe(true);
    expect(x509.issuer).toBe(issuer.subject);
    expect(x509.checkPrivateKey(createPrivateKey(serving.key))).toBe(true);
    expect(x509.checkPrivateKey(createPrivateKey(ca.key))).toBe(false);
  });

  it('is a server certificate, not a CA', () => {
    const x509 = new X509Certificate(serving.cert);
    expect(x509.ca).toBe(false);
    expect(x509.keyUsage).toEqual([SERVER_AUTH]);
    expect(extension(serving.cert, 'basicConstraints')['cA']).toBeFalsy();
    const usage = extension(serving.cert, 'keyUsage');
    expect(usage).toMatchObject({ digitalSignature: true, keyEncipherment: true });
    expect(usage['keyCertSign']).toBeFalsy();
    expect(extension(serving.cert, 'extKeyUsage')).toMatchObject({ serverAuth: true });
  });

  it("names the CA's key, not its own, as the authority key identifier", () => {
    const caKeyId = extension(ca.cert, 'subjectKeyIdentifier')['subjectKeyIdentifier'];
    const value = extension(serving.cert, 'authorityKeyIdentifier')['value'];
    expect(typeof caKeyId).toBe('string');
    expect(typeof value).toBe('string');
    // The extension is SEQUENCE { [0] keyIdentifier }: 30 16 80 14 followed by 20 bytes.
    expect(forge.util.bytesToHex(String(value))).toBe(`30168014${String(caKeyId)}`);
  });

  it('has random, positive, minimally encoded serials', async () => {
    const more = await Promise.all(
      [1, 2, 3].map(() => generateServingCertificate(ca, { dnsNames: ['a'], ipAddresses: [], now: FIXED_NOW })),
    );
    const serials = [serving, ...more].map((pair) => serialBytes(pair.cert));
    for (const serial of serials) {
      expect(serial.length).toBe(16);
      expect(serial[0]).toBeGreaterThan(0);
      expect(serial[0]).toBeLessThan(0x80);
    }
    expect(new Set(serials.map((serial) => serial.toString('hex'))).size).toBe(serials.length);
  });

  it('does not outlive its CA', async () => {
    const shortCa = await generateCertificateAuthority({ validityDays: 10, now: FIXED_NOW });
    const cert = await generateServingCertificate(shortCa, { dnsNames: ['a'], ipAddresses: [], now: FIXED_NOW });
    expect(cert.notAfter).toEqual(describeCertificate(shortCa.cert).notAfter);
  });

  it('writes IP addresses in canonical form, once each', async () => {
    const cert = await generateServingCertificate(ca, {
      dnsNames: [],
      ipAddresses: ['::ffff:10.0.0.1', '2001:DB8::A', '0:0:0:0:0:0:0:1', '::1', '10.0.0.1'],
      now: FIXED_NOW,
    });
    expect(describeCertificate(cert.cert).ipAddresses).toEqual(['::ffff:a00:1', '2001:db8::a', '::1', '10.0.0.1']);
    expect(new X509Certificate(cert.cert).checkIP('::ffff:10.0.0.1')).toBeDefined();
    // No DNS name to use as common name: an empty subject, and critical names instead.
    expect(new X509Certificate(cert.cert).subject).toBeUndefined();
    expect(extension(cert.cert, 'subjectAltName')['critical']).toBe(true);
    expect(extension(serving.cert, 'subjectAltName')['critical']).toBe(false);
  });

  it('refuses bad input', async () => {
    const now = FIXED_NOW;
    await expect(generateServingCertificate(ca, { dnsNames: [], ipAddresses: [], now })).rejects.toThrow(
      /at least one/,
    );
    await expect(generateServingCertificate(ca, { dnsNames: ['a b'], ipAddresses: [], now })).rejects.toThrow(
      /not a DNS name/,
    );
    for (const ip of ['256.1.1.1', 'fe80::1%eth0', 'localhost']) {
      await expect(generateServingCertificate(ca, { dnsNames: [], ipAddresses: [ip], now })).rejects.toThrow(
        /not an IP address/,
      );
    }
    await expect(generateServingCertificate(serving, { dnsNames: ['a'], ipAddresses: [], now })).rejects.toThrow(
      /not a certificate authority/,
    );
    const other = await generateCertificateAuthority({ now });
    await expect(
      generateServingCertificate({ cert: ca.cert, key: other.key }, { dnsNames: ['a'], ipAddresses: [], now }),
    ).rejects.toThrow(/does not belong/);
  });
});

describe('describeCertificate', () => {
  it('does not split a quoted name that contains a comma', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
    cert.serialNumber = '01';
    cert.validity.notBefore = FIXED_NOW;
    cert.validity.notAfter = new Date(FIXED_NOW.getTime() + DAY_MS);
    cert.setExtensions([
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'a, DNS:evil' }, { type: 7, ip: '10.1.2.3' }] },
    ]);
    cert.sign(
      forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
      forge.md.sha256.create(),
    );
    const described = describeCertificate(forge.pki.certificateToPem(cert));
    expect(described.dnsNames).toEqual(['a, DNS:evil']);
    expect(described.ipAddresses).toEqual(['10.1.2.3']);
  });

  it('throws on something that is not a certificate', () => {
    expect(() => describeCertificate('not a certificate')).toThrow();
  });
});

describe('canonicalIp', () => {
  it('writes IPv6 as RFC 5952 and keeps IPv4', () => {
    expect(canonicalIp('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(canonicalIp('FE80:0:0:0:0:0:1:2')).toBe('fe80::1:2');
    expect(canonicalIp('192.168.0.1')).toBe('192.168.0.1');
  });
});

describe('a TLS handshake with the serving certificate', () => {
  // A real handshake needs certificates valid at the real time.
  const now = new Date();
  let ca: PemPair;
  let otherCa: PemPair;
  let serving: PemPair;

  beforeAll(async () => {
    [ca, otherCa] = await Promise.all([generateCertificateAuthority({ now }), generateCertificateAuthority({ now })]);
    serving = await generateServingCertificate(ca, {
      dnsNames: ['localhost', 'replica-guard.replica-guard.svc'],
      ipAddresses: ['127.0.0.1', '::1'],
      now,
    });
  });

  async function withServer(host: string, run: (port: number) => Promise<void>): Promise<void> {
    const server = https.createServer({ cert: serving.cert, key: serving.key }, (_req, res) => {
      res.end('ok');
    });
    server.listen(0, host);
    await once(server, 'listening');
    try {
      await run((server.address() as AddressInfo).port);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }

  function get(options: https.RequestOptions): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = https.get({ agent: false, path: '/', ...options }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve(body));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  it('succeeds for the host name localhost', async () => {
    await withServer('127.0.0.1', async (port) => {
      expect(await get({ host: 'localhost', family: 4, port, ca: ca.cert })).toBe('ok');
      expect(await get({ host: '127.0.0.1', servername: 'localhost', port, ca: ca.cert })).toBe('ok');
    });
  });

  it('succeeds for the IP address 127.0.0.1', async () => {
    await withServer('127.0.0.1', async (port) => {
      expect(await get({ host: '127.0.0.1', port, ca: ca.cert })).toBe('ok');
    });
  });

  it('succeeds for the IP address ::1 where IPv6 is available', async (context) => {
    const probe = https.createServer();
    const available = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen(0, '::1', () => resolve(true));
    });
    probe.close();
    if (!available) context.skip();
    await withServer('::1', async (port) => {
      expect(await get({ host: '::1', port, ca: ca.cert })).toBe('ok');
    });
  });

  it('fails for a client that trusts a different CA', async () => {
    await withServer('127.0.0.1', async (port) => {
      await expect(get({ host: '127.0.0.1', servername: 'localhost', port, ca: otherCa.cert })).rejects.toMatchObject({
        code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      });
    });
  });

  it('fails for a host name the certificate does not cover', async () => {
    await withServer('127.0.0.1', async (port) => {
      await expect(get({ host: '127.0.0.1', servername: 'example.com', port, ca: ca.cert })).rejects.toMatchObject({
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
    });
  });
});
