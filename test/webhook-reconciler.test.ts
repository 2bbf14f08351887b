import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createReconcilerMetrics, WebhookReconciler } from '../src/cluster/webhook-reconciler.ts';
import { FakeApiServer, type KubeObject } from './fake-apiserver/fake-apiserver.ts';
import { capturingLogger, parseExposition, sampleValue, waitFor } from './helpers/telemetry.ts';
import { declaredConfigurations, desiredConfigMap, GUARD_RESOURCES, NAME, NAMESPACE, servedConfigurations } from './helpers/webhook-configurations.ts';

const VALIDATING = 'validatingwebhookconfigurations';
const MUTATING = 'mutatingwebhookconfigurations';

interface Served extends KubeObject {
  webhooks: ({ name: string; rules: unknown[]; failurePolicy: string; objectSelector?: unknown; clientConfig: { caBundle?: string } } & Record<string, unknown>)[];
}

let fake: FakeApiServer;
let registry: Registry;
let metrics: ReturnType<typeof createReconcilerMetrics>;
let log: ReturnType<typeof capturingLogger>;
let caBundle: string | undefined;

beforeEach(async () => {
  fake = await FakeApiServer.start({ extraResources: GUARD_RESOURCES });
  fake.put('configmaps', desiredConfigMap());
  for (const { resource, object } of servedConfigurations()) fake.put(resource, object);
  registry = new Registry();
  metrics = createReconcilerMetrics(registry);
  log = capturingLogger();
  caBundle = undefined;
});
afterEach(async () => {
  await fake.close();
});

function reconciler(restore = true, settleMs = 0): WebhookReconciler {
  return new WebhookReconciler({
    connection: { baseUrl: fake.url },
    namespace: NAMESPACE,
    configMap: `${NAME}-webhooks`,
    restore,
    caBundle: () => caBundle,
    metrics,
    logger: log.logger,
    settleMs,
  });
}
const served = (resource: string) => fake.get(resource, undefined, NAME) as Served;
const metric = async (name: string, labels: Record<string, string>) => sampleValue(parseExposition(await registry.metrics()), name, labels);
/** Edits a served configuration as another client would. */
function edit(resource: string, change: (c: Served) => void): void {
  const c = served(resource);
  change(c);
  fake.put(resource, c);
}

describe('the webhook configuration reconciler', () => {
  it('leaves configurations as declared alone, with the server defaults they carry', async () => {
    const r = reconciler();
    const before = fake.revision;
    expect((await r.reconcile()).map((o) => o.state)).toEqual(['in-sync', 'in-sync']);
    expect(fake.revision).toBe(before);
    expect(fake.requests.filter((q) => q.startsWith('PUT'))).toEqual([]);
    expect(await metric('replica_guard_webhook_configuration_in_sync', { configuration: 'validating' })).toBe(1);
  });

  it('restores rules, failurePolicy and an objectSelector changed behind its back, and counts it', async () => {
    edit(VALIDATING, (c) => {
      const [w] = c.webhooks;
      if (!w) throw new Error('no webhook');
      w.rules = [];
      w.failurePolicy = 'Ignore';
      w.objectSelector = { matchLabels: { 'escape-the-guard': 'true' } };
    });
    const outcomes = await reconciler().reconcile();
    expect(outcomes[1]).toMatchObject({
      state: 'restored',
      drift: ['webhooks[validate.replica-guard.io].objectSelector', 'webhooks[validate.replica-guard.io].failurePolicy', 'webhooks[validate.replica-guard.io].rules'],
    });
    const [w] = served(VALIDATING).webhooks;
    expect(w?.failurePolicy).toBe('Fail');
    expect(w?.objectSelector).toEqual({});
    expect(w?.rules).toHaveLength(1);
    expect(w?.matchPolicy).toBe('Equivalent');
    expect(await metric('replica_guard_webhook_configuration_restores_total', { configuration: 'validating' })).toBe(1);
    expect(log.lines.some((l) => String(l.msg).includes('was changed behind the guard: restored as declared'))).toBe(true);
    expect((await reconciler().reconcile()).map((o) => o.state)).toEqual(['in-sync', 'in-sync']);
  });

  it('waits for a helm upgrade to write the declaration after the configurations, instead of undoing it', async () => {
    // The upgrade writes the configuration first...
    edit(VALIDATING, (c) => {
      const [w] = c.webhooks;
      if (w) w.timeoutSeconds = 5;
    });
    const round = reconciler(true, 300).reconcile();
    // ...and the ConfigMap declaring it while the round waits.
    await new Promise((r) => setTimeout(r, 50));
    const declared = declaredConfigurations();
    for (const c of declared) for (const w of (c as Served).webhooks) w.timeoutSeconds = 5;
    fake.put('configmaps', desiredConfigMap(declared));
    expect((await round).map((o) => o.state)).toEqual(['in-sync', 'in-sync']);
    expect(served(VALIDATING).webhooks[0]?.timeoutSeconds).toBe(5);
    expect(await metric('replica_guard_webhook_configuration_restores_total', { configuration: 'validating' })).toBeUndefined();
  });

  it('still puts back a change the declaration does not follow once the wait is over', async () => {
    edit(VALIDATING, (c) => {
      const [w] = c.webhooks;
      if (w) w.timeoutSeconds = 5;
    });
    expect((await reconciler(true, 100).reconcile())[1]).toMatchObject({ state: 'restored', drift: ['webhooks[validate.replica-guard.io].timeoutSeconds'] });
    expect(served(VALIDATING).webhooks[0]?.timeoutSeconds).toBe(10);
    expect(await metric('replica_guard_webhook_configuration_restores_total', { configuration: 'validating' })).toBe(1);
  });

  it('removes a webhook nobody declared and puts back a deleted one', async () => {
    edit(MUTATING, (c) => {
      c.webhooks = [{ ...(c.webhooks[0] as Served['webhooks'][number]), name: 'other.example.com' }];
    });
    const [outcome] = await reconciler().reconcile();
    expect(outcome).toMatchObject({ state: 'restored', drift: ['webhooks[mutate.replica-guard.io]: missing', 'webhooks[other.example.com]: not declared'] });
    expect(served(MUTATING).webhooks.map((w) => w.name)).toEqual(['mutate.replica-guard.io']);
  });

  it('leaves a configuration labelled unmanaged alone and says so once, in the log and a metric', async () => {
    edit(VALIDATING, (c) => {
      c.metadata.labels = { 'replica-guard.io/unmanaged': 'true' };
      const [w] = c.webhooks;
      if (w) w.failurePolicy = 'Ignore';
    });
    const r = reconciler();
    expect((await r.reconcile())[1]?.state).toBe('unmanaged');
    await r.reconcile();
    expect(served(VALIDATING).webhooks[0]?.failurePolicy).toBe('Ignore');
    expect(await metric('replica_guard_webhook_configuration_unmanaged', { configuration: 'validating' })).toBe(1);
    expect(await metric('replica_guard_webhook_configuration_unmanaged', { configuration: 'mutating' })).toBe(0);
    expect(log.lines.filter((l) => String(l.msg).includes('is labelled unmanaged'))).toHaveLength(1);

    // Handed back: restored on the next round.
    edit(VALIDATING, (c) => {
      c.metadata.labels = {};
    });
    expect((await r.reconcile())[1]?.state).toBe('restored');
    expect(served(VALIDATING).webhooks[0]?.failurePolicy).toBe('Fail');
    expect(await metric('replica_guard_webhook_configuration_unmanaged', { configuration: 'validating' })).toBe(0);
  });

  it('sets the caBundle it manages, and never touches one it does not (cert-manager)', async () => {
    caBundle = Buffer.from('CA PEM').toString('base64');
    // Its own certificates moving is not a change behind its back: no restore counted.
    expect((await reconciler().reconcile()).map((o) => o.state)).toEqual(['ca-bundle', 'ca-bundle']);
    expect(await metric('replica_guard_webhook_configuration_restores_total', { configuration: 'validating' })).toBeUndefined();
    for (const resource of [MUTATING, VALIDATING]) expect(served(resource).webhooks[0]?.clientConfig.caBundle).toBe(caBundle);

    caBundle = undefined;
    edit(VALIDATING, (c) => {
      const [w] = c.webhooks;
      if (w) w.clientConfig.caBundle = Buffer.from('injected by cert-manager').toString('base64');
    });
    expect((await reconciler().reconcile()).map((o) => o.state)).toEqual(['in-sync', 'in-sync']);
    expect(served(VALIDATING).webhooks[0]?.clientConfig.caBundle).toBe(Buffer.from('injected by cert-manager').toString('base64'));
  });

  it('puts back a declared caBundle (certificates managed elsewhere) changed by hand, and counts it as a restore', async () => {
    const declared = Buffer.from('the CA of webhook.caBundle').toString('base64');
    const configurations = declaredConfigurations().map((c) => ({
      ...c,
      webhooks: (c.webhooks as Served['webhooks']).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: declared } })),
    }));
    fake.put('configmaps', desiredConfigMap(configurations));
    for (const resource of [MUTATING, VALIDATING]) {
      edit(resource, (c) => {
        for (const w of c.webhooks) w.clientConfig.caBundle = declared;
      });
    }
    expect((await reconciler().reconcile()).map((o) => o.state)).toEqual(['in-sync', 'in-sync']);
    edit(VALIDATING, (c) => {
      const [w] = c.webhooks;
      if (w) w.clientConfig.caBundle = Buffer.from('a CA of someone else').toString('base64');
    });
    expect((await reconciler().reconcile())[1]).toMatchObject({ state: 'restored', drift: ['webhooks[validate.replica-guard.io].clientConfig.caBundle'] });
    expect(served(VALIDATING).webhooks[0]?.clientConfig.caBundle).toBe(declared);
    expect(await metric('replica_guard_webhook_configuration_restores_total', { configuration: 'validating' })).toBe(1);
  });

  it('with restoring off, keeps only the caBundle', async () => {
    caBundle = Buffer.from('CA PEM').toString('base64');
    edit(VALIDATING, (c) => {
      const [w] = c.webhooks;
      if (w) w.failurePolicy = 'Ignore';
    });
    await reconciler(false).reconcile();
    const [w] = served(VALIDATING).webhooks;
    expect(w?.failurePolicy).toBe('Ignore');
    expect(w?.clientConfig.caBundle).toBe(caBundle);
  });

  it('says which permission is missing when the API server refuses the update', async () => {
    edit(VALIDATING, (c) => {
      const [w] = c.webhooks;
      if (w) w.failurePolicy = 'Ignore';
    });
    fake.intercept((req) => (req.method === 'PUT' ? { status: 403, reason: 'Forbidden' } : undefined));
    const outcomes = await reconciler().reconcile();
    expect(outcomes[1]).toMatchObject({ state: 'failed', reason: 'forbidden' });
    const line = log.lines.find((l) => l.level === 'error' && String(l.msg).includes('forbidden'));
    expect(line?.msg).toContain(`needs "update" on validatingwebhookconfigurations "${NAME}"`);
    expect(await metric('replica_guard_webhook_configuration_in_sync', { configuration: 'validating' })).toBe(0);
    expect(await metric('replica_guard_webhook_configuration_errors_total', { configuration: 'validating', reason: 'forbidden' })).toBe(1);
  });

  it('loses a compare-and-swap race without overwriting, and restores on the next round', async () => {
    edit(VALIDATING, (c) => {
      const [w] = c.webhooks;
      if (w) w.failurePolicy = 'Ignore';
    });
    let raced = false;
    fake.intercept((req) => {
      if (req.method === 'PUT' && !raced) {
        raced = true;
        // Another writer gets in between this round's read and its write.
        edit(VALIDATING, (c) => {
          c.metadata.annotations = { touched: 'yes' };
        });
      }
      return undefined;
    });
    const r = reconciler();
    expect((await r.reconcile())[1]).toMatchObject({ state: 'failed', reason: 'conflict' });
    expect(served(VALIDATING).metadata.annotations).toEqual({ touched: 'yes' });
    expect((await r.reconcile())[1]?.state).toBe('restored');
    expect(served(VALIDATING).webhooks[0]?.failurePolicy).toBe('Fail');
    expect(served(VALIDATING).metadata.annotations).toEqual({ touched: 'yes' });
  });

  it('restores a change at once through its watch, without waiting for the next interval', async () => {
    const stop = reconciler().start(3_600_000);
    try {
      await waitFor(() => fake.openWatches === 2, 'a watch on each configuration');
      edit(VALIDATING, (c) => {
        const [w] = c.webhooks;
        if (w) w.failurePolicy = 'Ignore';
      });
      // The served object changes when the PUT lands; the count follows once its answer is back.
      await waitFor(async () => (await metric('replica_guard_webhook_configuration_restores_total', { configuration: 'validating' })) === 1, 'the restore');
      expect(served(VALIDATING).webhooks[0]?.failurePolicy).toBe('Fail');
    } finally {
      stop();
    }
    await waitFor(() => fake.openWatches === 0, 'the watches to close');
  });

  it('reports a missing configuration and an unreadable declaration', async () => {
    fake.remove(MUTATING, undefined, NAME);
    expect((await reconciler().reconcile())[0]).toMatchObject({ state: 'missing' });
    fake.put('configmaps', { metadata: { name: `${NAME}-webhooks`, namespace: NAMESPACE }, data: { 'webhooks.yaml': 'kind: Secret\n' } });
    expect(await reconciler().reconcile()).toEqual([]);
    expect(log.lines.some((l) => l.msg === 'cannot read the declared webhook configurations')).toBe(true);
  });
});
