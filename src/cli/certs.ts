import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { certificatePaths, ensureCertificates } from '../tls/certificate-store.ts';
import { describeCertificate } from '../tls/certificates.ts';
import type { CliIo } from './check.ts';

/** The usage text of `replica-guard certs`. */
export const CERTS_USAGE = `Usage: replica-guard certs <create|inspect> [flags]

Creates or inspects the CA and serving certificate of a guard running outside the
cluster (the directory layout of a kubernetes.io/tls Secret: ca.crt, ca.key, tls.crt,
tls.key). Put the CA into the webhook configurations' caBundle, or into the chart's
webhook.caBundle value.

  create    make a CA and a serving certificate in --dir, or re-issue the serving
            certificate from the CA already there when it lacks a name or nears expiry
  inspect   describe the CA and the serving certificate in --dir; exit 1 when they do
            not chain, or are expired

Flags:
  --dir DIR          the certificate directory (default: certs)
  --dns-name NAME    a DNS name the serving certificate covers (repeatable;
                     create; default: localhost)
  --ip ADDRESS       an IP address it covers (repeatable; create; default: 127.0.0.1, ::1)
  -o, --output FMT   table (default), json or yaml
  -h, --help         show this text`;

/** What `certs` prints about a directory. */
interface CertsReport {
  readonly dir: string;
  readonly ca: { readonly subject: string; readonly notAfter: string; readonly fingerprint: string };
  readonly serving: {
    readonly dnsNames: readonly string[];
    readonly ipAddresses: readonly string[];
    readonly notBefore: string;
    readonly notAfter: string;
    readonly fingerprint: string;
    readonly signedByCa: boolean;
  };
  /** ca.crt, base64: what a webhook configuration's caBundle takes. */
  readonly caBundle: string;
  readonly problems: readonly string[];
}

/** Runs `replica-guard certs ...`; resolves with the exit code. */
export async function runCerts(argv: readonly string[], io: CliIo, now: () => Date = () => new Date()): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        dir: { type: 'string', default: 'certs' },
        'dns-name': { type: 'string', multiple: true },
        ip: { type: 'string', multiple: true },
        output: { type: 'string', short: 'o', default: 'table' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    io.err(`replica-guard certs: ${error instanceof Error ? error.message : String(error)}\n\n${CERTS_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(CERTS_USAGE);
    return 0;
  }
  const [action, ...extra] = positionals;
  const output = values.output;
  if ((action !== 'create' && action !== 'inspect') || extra.length > 0 || !['table', 'json', 'yaml'].includes(output)) {
    io.err(`replica-guard certs: ${action === undefined ? 'a command is missing' : `cannot run ${[action, ...extra].join(' ')} -o ${output}`}\n\n${CERTS_USAGE}`);
    return 2;
  }
  const dir = resolvePath(values.dir);
  try {
    if (action === 'create') {
      await ensureCertificates(dir, {
        dnsNames: values['dns-name'] ?? ['localhost'],
        ipAddresses: values.ip ?? ['127.0.0.1', '::1'],
        now: now(),
      });
    }
    const report = await inspect(dir, now());
    print(report, output, io);
    return report.problems.length === 0 ? 0 : 1;
  } catch (error) {
    io.err(`replica-guard certs ${action}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

async function inspect(dir: string, now: Date): Promise<CertsReport> {
  const paths = certificatePaths(dir);
  // One after the other: a directory missing both files is reported by the CA, every time.
  const caText = await readFile(paths.caCert, 'utf8');
  const certText = await readFile(paths.cert, 'utf8');
  const ca = new X509Certificate(caText);
  const leaf = new X509Certificate(certText);
  const described = describeCertificate(certText);
  const signedByCa = leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  const problems: string[] = [];
  if (!signedByCa) problems.push(`${paths.cert} is not signed by the CA in ${paths.caCert}`);
  for (const [file, cert] of [[paths.caCert, ca], [paths.cert, leaf]] as const) {
    if (cert.validToDate <= now) problems.push(`${file} expired at ${cert.validToDate.toISOString()}`);
  }
  return {
    dir,
    ca: { subject: ca.subject.replace(/\n/g, ', '), notAfter: ca.validToDate.toISOString(), fingerprint: ca.fingerprint256 },
    serving: {
      dnsNames: described.dnsNames,
      ipAddresses: described.ipAddresses,
      notBefore: described.notBefore.toISOString(),
      notAfter: described.notAfter.toISOString(),
      fingerprint: leaf.fingerprint256,
      signedByCa,
    },
    caBundle: Buffer.from(caText).toString('base64'),
    problems,
  };
}

function print(report: CertsReport, output: string, io: CliIo): void {
  if (output === 'json') return io.out(JSON.stringify(report, null, 2));
  if (output === 'yaml') return io.out(YAML.stringify(report).trimEnd());
  const rows: [string, string][] = [
    ['DIRECTORY', report.dir],
    ['CA', `${report.ca.subject}, expires ${report.ca.notAfter}`],
    ['SERVING NAMES', [...report.serving.dnsNames, ...report.serving.ipAddresses].join(', ')],
    ['SERVING EXPIRES', report.serving.notAfter],
    ['SIGNED BY CA', report.serving.signedByCa ? 'yes' : 'no'],
    ['CA BUNDLE', `${report.caBundle.slice(0, 24)}... (-o json for all of it)`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) io.out(`${k.padEnd(width)}  ${v}`);
  for (const p of report.problems) io.err(`problem: ${p}`);
}
