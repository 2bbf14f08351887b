import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { generateCertificateAuthority } from '../tls/certificates.ts';
import type { CliIo } from './check.ts';
import { runCli } from './main.ts';

const projectRoot = join(import.meta.dirname, '..', '..');

function recording(): CliIo & { out: (l: string) => void; lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l) };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-certs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('replica-guard certs', () => {
  it('creates a CA and a serving certificate for the given names, and reports them as JSON', async () => {
    const io = recording();
    const code = await runCli(['certs', 'create', '--dir', dir, '--dns-name', 'guard.example.com', '--ip', '10.0.0.5', '-o', 'json'], io);
    expect(io.errors).toEqual([]);
    expect(code).toBe(0);
    const report = JSON.parse(io.lines.join('\n')) as { serving: { dnsNames: string[]; ipAddresses: string[]; signedByCa: boolean }; caBundle: string };
    expect(report.serving).toMatchObject({ dnsNames: ['guard.example.com'], ipAddresses: ['10.0.0.5'], signedByCa: true });
    const ca = await readFile(join(dir, 'ca.crt'), 'utf8');
    expect(Buffer.from(report.caBundle, 'base64').toString()).toBe(ca);
    const leaf = new X509Certificate(await readFile(join(dir, 'tls.crt'), 'utf8'));
    expect(leaf.verify(new X509Certificate(ca).publicKey)).toBe(true);
    expect(leaf.checkHost('guard.example.com', { subject: 'never' })).toBe('guard.example.com');
  });

  it('re-issues from the same CA when asked for another name, and inspects as YAML or a table', async () => {
    await runCli(['certs', 'create', '--dir', dir], recording());
    const ca = await readFile(join(dir, 'ca.crt'), 'utf8');
    await runCli(['certs', 'create', '--dir', dir, '--dns-name', 'other.example.com'], recording());
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(ca);

    const yaml = recording();
    expect(await runCli(['certs', 'inspect', '--dir', dir, '-o', 'yaml'], yaml)).toBe(0);
    expect((YAML.parse(yaml.lines.join('\n')) as { serving: { dnsNames: string[] } }).serving.dnsNames).toEqual(['other.example.com']);
    const table = recording();
    expect(await runCli(['certs', 'inspect', '--dir', dir], table)).toBe(0);
    expect(table.lines.find((l) => l.startsWith('SIGNED BY CA'))).toMatch(/yes$/);
  });

  it('inspect exits 1 naming the problem when the certificate is not from the CA', async () => {
    await runCli(['certs', 'create', '--dir', dir], recording());
    await writeFile(join(dir, 'ca.crt'), (await generateCertificateAuthority({ now: new Date() })).cert);
    const io = recording();
    expect(await runCli(['certs', 'inspect', '--dir', dir], io)).toBe(1);
    expect(io.errors.join('\n')).toMatch(/tls\.crt is not signed by the CA/);
  });

  it('exits 1 with a message for a directory without certificates, and 2 for a bad command', async () => {
    const io = recording();
    expect(await runCli(['certs', 'inspect', '--dir', join(dir, 'none')], io)).toBe(1);
    expect(io.errors.join('\n')).toMatch(/ENOENT.*ca\.crt/);
    expect(await runCli(['certs', 'rotate'], recording())).toBe(2);
    expect(await runCli(['certs', 'inspect', '-o', 'xml'], recording())).toBe(2);
    expect(await runCli(['certs', '--bogus'], recording())).toBe(2);
  });

  it('answers --help with exit 0, as a real process', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['bin/replica-guard.mjs', 'certs', '--help'], { cwd: projectRoot });
    expect(stdout).toContain('Usage: replica-guard certs <create|inspect>');
    const top = recording();
    expect(await runCli(['help'], top)).toBe(0);
    expect(top.lines.join('\n')).toContain('certs <create|inspect>');
  });
});
