import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CHART_DIR, type Rendered, renderChart, requireHelm } from '../helpers/helm.ts';
import { ADMIN, ControlPlane } from './control-plane.ts';

// What helm renders, after values.schema.json accepted the values, is also what a real
// API server accepts: `kubectl apply --dry-run=server` runs every object through the
// API server's own validation (OpenAPI, CEL compilation of matchConditions and of the
// backstop's validations, defaulting) without storing it.

const POLICY = join(CHART_DIR, '../../policies/support-agents.yaml');
const WITH_POLICY = ['--set-file', `policies.files.agents=${POLICY}`];

/**
 * Kinds of CustomResourceDefinitions (Prometheus Operator, cert-manager): a bare API
 * server does not serve them, so a dry run could only say "no matches for kind". The
 * chart tests (test/chart) assert their rendered shape instead.
 */
const CRD_KINDS = new Set(['ServiceMonitor', 'PrometheusRule', 'Certificate', 'Issuer']);

let plane: ControlPlane;
let dir: string;

beforeAll(async () => {
  await requireHelm();
  plane = await ControlPlane.start([]);
  await plane.ensureNamespace('replica-guard');
  dir = await mkdtemp(join(tmpdir(), 'rg-chart-dry-run-'));
});

afterAll(async () => {
  await plane?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Renders with `args`, applies with --dry-run=server as the admin; resolves with what was sent and kubectl's answer. */
async function dryRun(name: string, args: readonly string[]) {
  const rendered = await renderChart(args);
  const sent = rendered.filter((o) => !CRD_KINDS.has(o.kind));
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, sent.map((o) => YAML.stringify(o)).join('---\n'));
  const run = await plane.kubectl(ADMIN, ['apply', '--dry-run=server', '-o', 'name', '-f', file]);
  return { rendered, sent, run };
}

/** `kind/name` as kubectl -o name prints it (lowercase kind, with its group). */
function names(objects: readonly Rendered[]): string[] {
  return objects.map((o) => `${o.kind.toLowerCase()}.${o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : ''}/${o.metadata.name}`.replace('./', '/')).sort();
}

describe('the API server accepts what the chart renders (kubectl apply --dry-run=server)', () => {
  it('with the defaults', async () => {
    const { sent, run } = await dryRun('defaults', []);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n').sort()).toEqual(names(sent));
    expect(sent.map((o) => o.kind)).toEqual(expect.arrayContaining(['Deployment', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration', 'ClusterRole', 'Role']));
  });

  it('with a policy, agent namespaces, users and groups (the matchConditions compile as CEL)', async () => {
    const { sent, run } = await dryRun('agents', [...WITH_POLICY, '--set', 'agents.namespaces={agents,bots},agents.users={ci-*},agents.groups={robots}']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n').sort()).toEqual(names(sent));
  });

  it('on the cluster version (1.36.3) with monitoring off and the backstop on: the ValidatingAdmissionPolicy and its binding compile', async () => {
    const { sent, run } = await dryRun('backstop', [...WITH_POLICY, '--set', 'backstop.enabled=true', '--kube-version', '1.36.3']);
    expect(run.code, run.stderr).toBe(0);
    expect(sent.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy')).map((o) => o.apiVersion)).toEqual([
      'admissionregistration.k8s.io/v1',
      'admissionregistration.k8s.io/v1',
    ]);
    expect(run.stdout.trim().split('\n').sort()).toEqual(names(sent));
  });

  it('with monitoring on (the dashboard ConfigMap and the NetworkPolicy; ServiceMonitor and PrometheusRule are CRDs)', async () => {
    const { rendered, sent, run } = await dryRun('monitoring', [
      '--set',
      'monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true,networkPolicy.enabled=true',
      '--set',
      'networkPolicy.apiServerCIDRs={10.0.0.0/8}',
    ]);
    expect(rendered.map((o) => o.kind)).toEqual(expect.arrayContaining(['ServiceMonitor', 'PrometheusRule']));
    expect(sent.map((o) => o.kind)).toContain('NetworkPolicy');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n').sort()).toEqual(names(sent));
  });

  it('in url mode, and with cert-manager (its Certificate and Issuer are CRDs)', async () => {
    const url = await dryRun('url', [...WITH_POLICY, '--set', 'webhook.url=https://127.0.0.1:9443']);
    expect(url.run.code, url.run.stderr).toBe(0);
    expect(url.run.stdout.trim().split('\n').sort()).toEqual(names(url.sent));
    const certManager = await dryRun('cert-manager', [...WITH_POLICY, '--set', 'certificates.mode=cert-manager']);
    expect(certManager.rendered.map((o) => o.kind)).toContain('Certificate');
    expect(certManager.run.code, certManager.run.stderr).toBe(0);
    expect(certManager.run.stdout.trim().split('\n').sort()).toEqual(names(certManager.sent));
  });

  it('refuses what it must: a matchCondition that is not CEL is rejected by the same dry run', async () => {
    const { sent } = await dryRun('probe', []);
    const broken = sent.map((o) =>
      o.kind === 'ValidatingWebhookConfiguration'
        ? { ...o, webhooks: (o.webhooks as { matchConditions: { name: string; expression: string }[] }[]).map((w) => ({ ...w, matchConditions: [{ name: 'x', expression: 'request.(' }] })) }
        : o,
    );
    const file = join(dir, 'broken.yaml');
    await writeFile(file, broken.map((o) => YAML.stringify(o)).join('---\n'));
    const run = await plane.kubectl(ADMIN, ['apply', '--dry-run=server', '-o', 'name', '-f', file]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/matchConditions\[0\]\.expression.*compilation failed|Syntax error/s);
  });
});
