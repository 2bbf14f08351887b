import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureCertificates, type CertificateFiles, type CertificateLogger } from './certificate-store.ts';
import { generateCertificateAuthority, generateServingCertificate, type PemPair } from './certificates.ts';

const DAY_MS = 86_400_000;
const NOW = new Date('2030-01-01T00:00:00Z');
const NAMES = { dnsNames: ['localhost', 'replica-guard.replica-guard.svc'], ipAddresses: ['127.0.0.1', '::1'] };

interface LogEntry {
  level: 'info' | 'warn';
  obj: object;
  msg: string;
}

function recordingLogger(): CertificateLogger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  return {
    entries,
    info: (obj, msg) => entries.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => entries.push({ level: 'warn', obj, msg }),
  };
}

function daysBefore(date: Date, days: number): Date {
  return new Date(date.getTime() - days * DAY_MS);
}

function chainsTo(cert: string, caCert: string): boolean {
  return new X509Certificate(cert).verify(new X509Certificate(caCert).publicKey);
}

let root: string;
let dir: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'replica-guard-tls-'));
  dir = join(root, 'certs');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function read(name: string): Promise<string> {
  return readFile(join(dir, name), 'utf8');
}

async function mode(name: string): Promise<number> {
  return (await stat(join(dir, name))).mode & 0o777;
}

describe('ensureCertificates with a directory it manages', () => {
  it('generates a CA and a serving certificate on first use, creating the directory', async () => {
    const logger = recordingLogger();
    const nested = join(root, 'deeper', 'certs');
    dir = nested;
    const files = await ensureCertificates(nested, { ...NAMES, now: NOW, logger });

    expect(files.generated).toBe(true);
    expect(files.paths).toEqual({
      caCert: join(nested, 'ca.crt'),
      caKey: join(nested, 'ca.key'),
      cert: join(nested, 'tls.crt'),
      key: join(nested, 'tls.key'),
    });
    expect((await readdir(nested)).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    expect(await read('ca.crt')).toBe(files.caCert);
    expect(await read('tls.crt')).toBe(files.cert);
    expect(await read('tls.key')).toBe(files.key);
    expect(await mode('ca.key')).toBe(0o600);
    expect(await mode('tls.key')).toBe(0o600);
    expect((await mode('tls.crt')) & 0o022).toBe(0);

    const cert = new X509Certificate(files.cert);
    expect(chainsTo(files.cert, files.caCert)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(files.key))).toBe(true);
    expect(new X509Certificate(files.caCert).checkPrivateKey(createPrivateKey(await read('ca.key')))).toBe(true);
    expect(cert.checkHost('replica-guard.replica-guard.svc', { subject: 'never' })).toBeDefined();
    expect(cert.checkIP('::1')).toBeDefined();
    expect(files.notAfter).toEqual(cert.validToDate);

    expect(logger.entries).toEqual([
      {
        level: 'info',
        obj: expect.objectContaining({ paths: files.paths, notAfter: files.notAfter.toISOString() }),
        msg: expect.stringMatching(/^generated/),
      },
    ]);
  });

  it('reuses what it generated', async () => {
    const first = await ensureCertificates(dir, { ...NAMES, now: NOW });
    const logger = recordingLogger();
    const second = await ensureCertificates(dir, { ...NAMES, now: new Date(NOW.getTime() + DAY_MS), logger });

    expect(second.generated).toBe(false);
    expect(second.cert).toBe(first.cert);
    expect(second.key).toBe(first.key);
    expect(second.caCert).toBe(first.caCert);
    expect(second.notAfter).toEqual(first.notAfter);
    expect(logger.entries.map((entry) => [entry.level, entry.msg])).toEqual([['info', 'reusing TLS certificates']]);
  });

  it('re-issues from the same CA a certificate that lacks a requested name', async () => {
    const first = await ensureCertificates(dir, { ...NAMES, now: NOW });
    const caKey = await read('ca.key');
    const logger = recordingLogger();
    const second = await ensureCertificates(dir, {
      dnsNames: [...NAMES.dnsNames, 'replica-guard.replica-guard.svc.cluster.local'],
      ipAddresses: [...NAMES.ipAddresses, '10.96.0.10'],
      now: NOW,
      logger,
    });

    expect(second.generated).toBe(true);
    expect(second.caCert).toBe(first.caCert);
    expect(await read('ca.crt')).toBe(first.caCert);
    expect(await read('ca.key')).toBe(caKey);
    expect(second.cert).not.toBe(first.cert);
    expect(await read('tls.crt')).toBe(second.cert);
    expect(await read('tls.key')).toBe(second.key);
    expect(await mode('tls.key')).toBe(0o600);
    expect(chainsTo(second.cert, first.caCert)).toBe(true);
    const cert = new X509Certificate(second.cert);
    expect(cert.checkHost('replica-guard.replica-guard.svc.cluster.local', { subject: 'never' })).toBeDefined();
    expect(cert.checkIP('10.96.0.10')).toBeDefined();

    const [entry] = logger.entries;
    expect(entry?.msg).toMatch(/^re-issued/);
    expect(entry?.obj).toMatchObject({ reason: expect.stringContaining('10.96.0.10') });
  });

  it('re-issues a certificate close to expiry, keeping the CA', async () => {
    const first = await ensureCertificates(dir, { ...NAMES, now: NOW });
    const later = daysBefore(first.notAfter, 10);
    const second = await ensureCertificates(dir, { ...NAMES, now: later });

    expect(second.generated).toBe(true);
    expect(second.caCert).toBe(first.caCert);
    expect(second.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
    expect(new X509Certificate(second.cert).validFromDate.getTime()).toBeLessThanOrEqual(later.getTime());
    expect(chainsTo(second.cert, first.caCert)).toBe(true);
  });

  it('honours renewBeforeDays', async () => {
    const first = await ensureCertificates(dir, { ...NAMES, now: NOW });
    const later = daysBefore(first.notAfter, 10);
    const second = await ensureCertificates(dir, { ...NAMES, now: later, renewBeforeDays: 5 });
    expect(second.generated).toBe(false);
    expect(second.cert).toBe(first.cert);
    await expect(ensureCertificates(dir, { ...NAMES, now: NOW, renewBeforeDays: -1 })).rejects.toThrow(
      /renewBeforeDays/,
    );
  });

  it('re-issues when tls.key does not belong to tls.crt or is missing', async () => {
    const first = await ensureCertificates(dir, { ...NAMES, now: NOW });
    await writeFile(join(dir, 'tls.key'), await read('ca.key'));
    const second = await ensureCertificates(dir, { ...NAMES, now: NOW });
    expect(second.generated).toBe(true);
    expect(second.caCert).toBe(first.caCert);
    expect(new X509Certificate(second.cert).checkPrivateKey(createPrivateKey(await read('tls.key')))).toBe(true);

    await rm(join(dir, 'tls.key'));
    const third = await ensureCertificates(dir, { ...NAMES, now: NOW });
    expect(third.generated).toBe(true);
    expect(third.caCert).toBe(first.caCert);
  });

  it('re-issues a serving certificate signed by another CA', async () => {
    const first = await ensureCertificates(dir, { ...NAMES, now: NOW });
    const stranger = await generateCertificateAuthority({ now: NOW });
    const foreign = await generateServingCertificate(stranger, { ...NAMES, now: NOW });
    await writeFile(join(dir, 'tls.crt'), foreign.cert);
    await writeFile(join(dir, 'tls.key'), foreign.key);

    const second = await ensureCertificates(dir, { ...NAMES, now: NOW });
    expect(second.generated).toBe(true);
    expect(chainsTo(second.cert, first.caCert)).toBe(true);
  });

  it('replaces everything, with a warning, when the CA is unusable', async () => {
    const first = await ensureCertificates(dir, { ...NAMES, now: NOW });
    await rm(join(dir, 'ca.crt'));
    const logger = recordingLogger();
    const second = await ensureCertificates(dir, { ...NAMES, now: NOW, logger });

    expect(second.generated).toBe(true);
    expect(second.caCert).not.toBe(first.caCert);
    expect(await read('ca.crt')).toBe(second.caCert);
    expect(chainsTo(second.cert, second.caCert)).toBe(true);
    expect(logger.entries.map((entry) => entry.level)).toEqual(['warn', 'info']);
    expect(logger.entries[0]?.obj).toMatchObject({ reason: expect.stringContaining('ca.crt is missing') });
  });

  it('leaves no temporary files behind', async () => {
    await ensureCertificates(dir, { ...NAMES, now: NOW });
    await ensureCertificates(dir, { ...NAMES, ipAddresses: ['10.0.0.1'], now: NOW });
    expect((await readdir(dir)).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
  });
});

describe('ensureCertificates with certificates someone else provides', () => {
  let ca: PemPair;
  let serving: PemPair;

  beforeEach(async () => {
    ca = await generateCertificateAuthority({ now: NOW });
    serving = await generateServingCertificate(ca, { ...NAMES, now: NOW });
    await mkdir(dir);
  });

  async function provide(files: { caCert?: string; cert?: string; key?: string }): Promise<void> {
    if (files.caCert !== undefined) await writeFile(join(dir, 'ca.crt'), files.caCert);
    if (files.cert !== undefined) await writeFile(join(dir, 'tls.crt'), files.cert);
    if (files.key !== undefined) await writeFile(join(dir, 'tls.key'), files.key);
  }

  async function snapshot(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const name of await readdir(dir)) {
      const info = await stat(join(dir, name));
      out[name] = `${info.mtimeMs}:${info.ino}:${await read(name)}`;
    }
    return out;
  }

  it('uses valid material as it is, without writing anything', async () => {
    await provide({ caCert: ca.cert, cert: serving.cert, key: serving.key });
    const before = await snapshot();
    const logger = recordingLogger();
    const files: CertificateFiles = await ensureCertificates(dir, { ...NAMES, now: NOW, logger });

    expect(files.generated).toBe(false);
    expect(files).toMatchObject({ caCert: ca.cert, cert: serving.cert, key: serving.key });
    expect(await snapshot()).toEqual(before);
    expect(logger.entries.map((entry) => [entry.level, entry.msg])).toEqual([
      ['info', 'using the provided TLS certificates'],
    ]);
  });

  it('accepts a tls.crt that carries its CA and a ca.crt bundle of several CAs', async () => {
    const previous = await generateCertificateAuthority({ now: NOW });
    await provide({ caCert: previous.cert + ca.cert, cert: serving.cert + ca.cert, key: serving.key });
    const files = await ensureCertificates(dir, { ...NAMES, now: NOW });
    expect(files.generated).toBe(false);
    expect(files.cert).toBe(serving.cert + ca.cert);
  });

  it('uses material close to expiry, with a warning, since its owner renews it', async () => {
    await provide({ caCert: ca.cert, cert: serving.cert, key: serving.key });
    const notAfter = new X509Certificate(serving.cert).validToDate;
    const logger = recordingLogger();
    const files = await ensureCertificates(dir, { ...NAMES, now: daysBefore(notAfter, 1), logger });
    expect(files.cert).toBe(serving.cert);
    expect(logger.entries.map((entry) => entry.level)).toEqual(['warn', 'info']);
  });

  const broken: Array<[string, (good: { ca: PemPair; serving: PemPair }) => Promise<void>, RegExp]> = [
    ['an unparseable tls.crt', async () => writeFile(join(dir, 'tls.crt'), 'garbage'), /tls\.crt holds no PEM/],
    [
      'a certificate with a damaged signature',
      async ({ serving }) => {
        const der = Buffer.from(new X509Certificate(serving.cert).raw);
        const at = der.length - 10;
        der[at] = (der[at] ?? 0) ^ 0xff;
        const body = der.toString('base64').replace(/.{64}/g, '$&\n');
        await writeFile(join(dir, 'tls.crt'), `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`);
      },
      /tls\.crt is not signed by the CA/,
    ],
    ['a missing tls.key', async () => rm(join(dir, 'tls.key')), /tls\.key is missing/],
    ['a missing ca.crt', async () => rm(join(dir, 'ca.crt')), /ca\.crt is missing/],
    ['an unparseable tls.key', async () => writeFile(join(dir, 'tls.key'), 'garbage'), /tls\.key cannot be parsed/],
    [
      'a key of another certificate',
      async ({ ca }) => writeFile(join(dir, 'tls.key'), ca.key),
      /tls\.key does not belong to the certificate in .*tls\.crt/,
    ],
    [
      'a certificate from another CA',
      async () => {
        const stranger = await generateCertificateAuthority({ now: NOW });
        const foreign = await generateServingCertificate(stranger, { ...NAMES, now: NOW });
        await writeFile(join(dir, 'tls.crt'), foreign.cert);
        await writeFile(join(dir, 'tls.key'), foreign.key);
      },
      /tls\.crt is not signed by the CA in .*ca\.crt/,
    ],
    [
      'a certificate without a requested name',
      async ({ ca }) => {
        const narrow = await generateServingCertificate(ca, { dnsNames: ['localhost'], ipAddresses: [], now: NOW });
        await writeFile(join(dir, 'tls.crt'), narrow.cert);
        await writeFile(join(dir, 'tls.key'), narrow.key);
      },
      /tls\.crt does not cover replica-guard\.replica-guard\.svc, 127\.0\.0\.1, ::1/,
    ],
  ];

  for (const [what, breakIt, message] of broken) {
    it(`refuses ${what}, naming the file and leaving it alone`, async () => {
      await provide({ caCert: ca.cert, cert: serving.cert, key: serving.key });
      await breakIt({ ca, serving });
      const before = await snapshot();
      await expect(ensureCertificates(dir, { ...NAMES, now: NOW })).rejects.toThrow(message);
      expect(await snapshot()).toEqual(before);
    });
  }

  it('refuses an expired certificate, naming the file', async () => {
    await provide({ caCert: ca.cert, cert: serving.cert, key: serving.key });
    const notAfter = new X509Certificate(serving.cert).validToDate;
    const before = await snapshot();
    await expect(
      ensureCertificates(dir, { ...NAMES, now: new Date(notAfter.getTime() + DAY_MS) }),
    ).rejects.toThrow(new RegExp(`${join(dir, 'tls.crt').replace(/[.\\]/g, '\\$&')} expired at`));
    expect(await snapshot()).toEqual(before);
  });

  it('refuses a lone ca.crt rather than replacing it', async () => {
    await provide({ caCert: ca.cert });
    await expect(ensureCertificates(dir, { ...NAMES, now: NOW })).rejects.toThrow(/tls\.crt is missing/);
    expect(await readdir(dir)).toEqual(['ca.crt']);
  });
});
