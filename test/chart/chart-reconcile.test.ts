import { Registry } from 'prom-client';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createReconcilerMetrics, WebhookReconciler } from '../../src/cluster/webhook-reconciler.ts';
import { FakeApiServer, type KubeObject } from '../fake-apiserver/fake-apiserver.ts';
import { only, type Rendered, renderChart, requireHelm } from '../helpers/helm.ts';
import { capturingLogger } from '../helpers/telemetry.ts';
import { GUARD_RESOURCES } from '../helpers/webhook-configurations.ts';

// What helm renders and what the guard reconciles towards come from the same values: a
// configuration as helm applies it is in sync, and after a helm upgrade it is again.

const RESOURCES = { MutatingWebhookConfiguration: 'mutatingwebhookconfigurations', ValidatingWebhookConfiguration: 'validatingwebhookconfigurations' } as const;

let fake: FakeApiServer;
beforeAll(requireHelm);
beforeEach(async () => {
  fake = await FakeApiServer.start({ extraResources: GUARD_RESOURCES });
});
afterEach(async () => {
  await fake.close();
});

/** Applies the rendered ConfigMap and configurations as helm would, with the API server's defaults. */
function apply(objects: readonly Rendered[]): void {
  fake.put('configmaps', only(objects, 'ConfigMap', 'rg-replica-guard-webhooks') as unknown as KubeObject);
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'] as const) {
    const rendered = only(objects, kind) as unknown as KubeObject & { webhooks: Record<string, unknown>[] };
    const existing = fake.get(RESOURCES[kind], undefined, rendered.metadata.name);
    fake.put(RESOURCES[kind], {
      ...rendered,
      metadata: { ...rendered.metadata, ...(existing ? { resourceVersion: existing.metadata.resourceVersion } : {}) },
      webhooks: rendered.webhooks.map((w) => ({ matchPolicy: 'Equivalent', objectSelector: {}, ...w })),
    });
  }
}

function reconciler(): WebhookReconciler {
  return new WebhookReconciler({
    connection: { baseUrl: fake.url },
    namespace: 'replica-guard',
    configMap: 'rg-replica-guard-webhooks',
    restore: true,
    caBundle: () => undefined,
    metrics: createReconcilerMetrics(new Registry()),
    logger: capturingLogger('silent').logger,
  });
}

describe('the chart and the reconciler', () => {
  it('agree on what helm installs, and again after a helm upgrade with changed values', async () => {
    apply(await renderChart(['--set', 'agents.namespaces={agents}']));
    const r = reconciler();
    expect((await r.reconcile()).map((o) => o.state)).toEqual(['in-sync', 'in-sync']);

    apply(await renderChart(['--set', 'agents.namespaces={agents,bots},webhook.timeoutSeconds=5,webhook.excludeNamespaces={monitoring}']));
    expect((await r.reconcile()).map((o) => o.state)).toEqual(['in-sync', 'in-sync']);
    const served = fake.get('validatingwebhookconfigurations', undefined, 'rg-replica-guard') as unknown as { webhooks: { timeoutSeconds: number }[] };
    expect(served.webhooks[0]?.timeoutSeconds).toBe(5);
  });

  it('puts back a hand edit of a chart-rendered configuration', async () => {
    apply(await renderChart(['--set', 'agents.namespaces={agents}']));
    const served = fake.get('validatingwebhookconfigurations', undefined, 'rg-replica-guard') as unknown as KubeObject & { webhooks: { matchConditions: unknown[] }[] };
    const [w] = served.webhooks;
    if (w) w.matchConditions = [];
    fake.put('validatingwebhookconfigurations', served);
    expect((await reconciler().reconcile())[1]).toMatchObject({ state: 'restored', drift: ['webhooks[validate.replica-guard.io].matchConditions'] });
  });
});
