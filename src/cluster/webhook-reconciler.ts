import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { watchForChanges } from './change-trigger.ts';
import { GUARD_FIELD_MANAGER, handedBack, type ManagedFieldsEntry } from './field-ownership.ts';
import { type KubeConnection, kubeFetch } from './kube-http.ts';
import {
  CONFIGURATION_RESOURCES,
  type ConfigurationKind,
  driftOf,
  isConfiguration,
  isUnmanaged,
  parseDesiredConfigurations,
  restoredConfiguration,
  UNMANAGED_LABEL,
  type WebhookConfiguration,
} from './webhook-drift.ts';

/** The `configuration` label: bounded to the two kinds. */
const LABEL: Readonly<Record<ConfigurationKind, string>> = {
  MutatingWebhookConfiguration: 'mutating',
  ValidatingWebhookConfiguration: 'validating',
};

/** The reconciler's metrics. */
export interface ReconcilerMetrics {
  readonly inSync: Gauge;
  readonly unmanaged: Gauge;
  readonly restores: Counter;
  readonly errors: Counter;
}

/** Registers the reconciler's metrics. */
export function createReconcilerMetrics(registry: Registry): ReconcilerMetrics {
  return {
    inSync: new Gauge({
      name: 'replica_guard_webhook_configuration_in_sync',
      help: '1 when the webhook configuration is as the chart declared it (after any restore), 0 otherwise',
      labelNames: ['configuration'],
      registers: [registry],
    }),
    unmanaged: new Gauge({
      name: 'replica_guard_webhook_configuration_unmanaged',
      help: `1 while the webhook configuration carries ${UNMANAGED_LABEL}=true and the guard leaves it alone`,
      labelNames: ['configuration'],
      registers: [registry],
    }),
    restores: new Counter({
      name: 'replica_guard_webhook_configuration_restores_total',
      help: 'Webhook configurations put back as declared after a change made behind the guard',
      labelNames: ['configuration'],
      registers: [registry],
    }),
    errors: new Counter({
      name: 'replica_guard_webhook_configuration_errors_total',
      help: 'Reconciliation rounds that could not read or restore a webhook configuration',
      labelNames: ['configuration', 'reason'],
      registers: [registry],
    }),
  };
}

/** Options of {@link WebhookReconciler}. */
export interface WebhookReconcilerOptions {
  readonly connection: KubeConnection;
  /** Where the desired-state ConfigMap lives: the guard's namespace. */
  readonly namespace: string;
  /** The ConfigMap holding `webhooks.yaml`. */
  readonly configMap: string;
  /** Restore every declared field; false: keep the caBundle only. */
  readonly restore: boolean;
  /** The caBundle (base64) both configurations must carry; undefined: never touched (cert-manager). */
  readonly caBundle: () => string | undefined;
  readonly metrics: ReconcilerMetrics;
  readonly logger: Logger;
  /**
   * A change is put back only if it is still there this long after it was found, against
   * the declaration read again (default 0: at once). `helm upgrade` writes the
   * configurations and the ConfigMap that declares them one after the other, and a round
   * between the two would otherwise undo the upgrade's change and count it as a restore.
   */
  readonly settleMs?: number | undefined;
}

/** What one round found for one configuration. */
export type ReconcileOutcome =
  | { readonly kind: ConfigurationKind; readonly name: string; readonly state: 'in-sync' | 'unmanaged' | 'missing' }
  | { readonly kind: ConfigurationKind; readonly name: string; readonly state: 'restored' | 'ca-bundle'; readonly drift: readonly string[] }
  | { readonly kind: ConfigurationKind; readonly name: string; readonly state: 'failed'; readonly reason: string; readonly message: string };

const KEY = 'webhooks.yaml';

/**
 * Keeps both webhook configurations as the chart declared them. Each round reads the
 * declaration (a ConfigMap the chart renders from the same values, so `helm upgrade` and
 * the guard agree) and each configuration, and puts back what drifted with a
 * compare-and-swap update. A configuration labelled `replica-guard.io/unmanaged=true` is
 * left alone, and said so once per change of that state.
 */
export class WebhookReconciler {
  readonly #o: WebhookReconcilerOptions;
  /** Per configuration, what the last round logged, so a steady state is not logged every round. */
  readonly #lastLogged = new Map<string, string>();
  #running: Promise<ReconcileOutcome[]> | undefined;
  /** The declaration as last read: which configurations to look at for {@link servedCaBundles}. */
  #declared: readonly WebhookConfiguration[] | undefined;

  constructor(options: WebhookReconcilerOptions) {
    this.#o = options;
  }

  /** One round now (rounds never overlap). */
  reconcile(): Promise<ReconcileOutcome[]> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /**
   * Runs a round every `intervalMs`, and at once when a watch reports a change to one of
   * the declared configurations, until the returned function is called.
   */
  start(intervalMs: number): () => void {
    const watches = new Map<string, () => void>();
    const round = () =>
      void this.reconcile().then(() => {
        for (const want of this.#declared ?? []) {
          const key = `${want.kind}/${want.metadata.name}`;
          if (watches.has(key)) continue;
          watches.set(
            key,
            watchForChanges({
              connection: this.#o.connection,
              path: `/apis/admissionregistration.k8s.io/v1/${CONFIGURATION_RESOURCES[want.kind]}`,
              name: want.metadata.name,
              onChange: () => void this.reconcile(),
              logger: this.#o.logger,
            }),
          );
        }
      });
    round();
    const timer = setInterval(round, intervalMs);
    timer.unref();
    return () => {
      clearInterval(timer);
      for (const stop of watches.values()) stop();
    };
  }

  async #round(): Promise<ReconcileOutcome[]> {
    let desired: WebhookConfiguration[];
    try {
      desired = await this.#desired();
    } catch (err) {
      this.#logOnce('desired', `unreadable:${String(err)}`, () =>
        this.#o.logger.error({ err, configMap: `${this.#o.namespace}/${this.#o.configMap}` }, 'cannot read the declared webhook configurations'),
      );
      return [];
    }
    this.#lastLogged.delete('desired');
    this.#declared = desired;
    const outcomes: ReconcileOutcome[] = [];
    for (const want of desired) outcomes.push(await this.#one(want));
    return outcomes;
  }

  /**
   * The CA bundles (PEM) every declared webhook carries now, one per webhook (empty when a
   * webhook has none); undefined before the declaration was read or when a configuration
   * cannot be read.
   */
  async servedCaBundles(): Promise<string[] | undefined> {
    const declared = this.#declared;
    if (declared === undefined) return undefined;
    const bundles: string[] = [];
    for (const want of declared) {
      const path = `/apis/admissionregistration.k8s.io/v1/${CONFIGURATION_RESOURCES[want.kind]}/${encodeURIComponent(want.metadata.name)}`;
      const res = await kubeFetch(this.#o.connection, path, { signal: AbortSignal.timeout(10_000) });
      const body: unknown = await res.json().catch(() => undefined);
      if (res.status !== 200 || !isConfiguration(body)) return undefined;
      for (const w of body.webhooks ?? []) bundles.push(Buffer.from(w.clientConfig?.caBundle ?? '', 'base64').toString('utf8'));
    }
    return bundles;
  }

  async #desired(): Promise<WebhookConfiguration[]> {
    const path = `/api/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/configmaps/${encodeURIComponent(this.#o.configMap)}`;
    const res = await kubeFetch(this.#o.connection, path, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json().catch(() => undefined)) as { data?: Record<string, string>; message?: string } | undefined;
    if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}${permissionHint(res.status, 'get', 'configmaps', this.#o.configMap)}: ${body?.message ?? ''}`);
    const text = body?.data?.[KEY];
    if (text === undefined) throw new Error(`${path} has no ${KEY}`);
    return parseDesiredConfigurations(text);
  }

  async #one(want: WebhookConfiguration, settled = false): Promise<ReconcileOutcome> {
    const { kind } = want;
    const name = want.metadata.name;
    const label = { configuration: LABEL[kind] };
    const m = this.#o.metrics;
    const path = `/apis/admissionregistration.k8s.io/v1/${CONFIGURATION_RESOURCES[kind]}/${encodeURIComponent(name)}`;
    const fail = (reason: string, message: string): ReconcileOutcome => {
      m.errors.inc({ ...label, reason });
      m.inSync.set(label, 0);
      this.#logOnce(kind, `failed:${reason}:${message}`, () => this.#o.logger.error({ configuration: kind, name, reason }, message));
      return { kind, name, state: 'failed', reason, message };
    };
    let actual: WebhookConfiguration;
    try {
      const res = await kubeFetch(this.#o.connection, path, { signal: AbortSignal.timeout(10_000) });
      const body: unknown = await res.json().catch(() => undefined);
      if (res.status === 404) {
        m.inSync.set(label, 0);
        this.#logOnce(kind, 'missing', () => this.#o.logger.error({ configuration: kind, name }, `the ${kind} ${name} does not exist: helm upgrade recreates it`));
        return { kind, name, state: 'missing' };
      }
      if (res.status !== 200 || !isConfiguration(body)) return fail(reasonOf(res.status), `GET ${path}: HTTP ${res.status}${permissionHint(res.status, 'get', CONFIGURATION_RESOURCES[kind], name)}`);
      actual = body;
    } catch (err) {
      return fail('unreachable', `GET ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (isUnmanaged(actual)) {
      m.unmanaged.set(label, 1);
      this.#logOnce(kind, 'unmanaged', () =>
        this.#o.logger.warn({ configuration: kind, name, label: `${UNMANAGED_LABEL}=true` }, `the ${kind} ${name} is labelled unmanaged: the guard leaves it alone until the label is removed`),
      );
      return { kind, name, state: 'unmanaged' };
    }
    m.unmanaged.set(label, 0);
    const caBundle = this.#o.caBundle();
    const drift = driftOf(want, actual, caBundle).filter((d) => this.#o.restore || d.endsWith('.caBundle'));
    if (drift.length === 0) {
      m.inSync.set(label, 1);
      this.#logOnce(kind, 'in-sync', () => this.#o.logger.info({ configuration: kind, name }, `the ${kind} ${name} is as declared`));
      return { kind, name, state: 'in-sync' };
    }
    // Only the caBundle, and the guard's own (first start, a rotation): not a change behind
    // its back. A declared caBundle (certificates managed elsewhere) put back is a restore.
    const ownBundle = caBundle !== undefined && drift.every((d) => d.endsWith('.caBundle'));
    const settleMs = this.#o.settleMs ?? 0;
    if (!settled && !ownBundle && settleMs > 0) {
      await sleep(settleMs, undefined, { ref: false });
      const declared = await this.#desired().catch(() => undefined);
      return this.#one(declared?.find((d) => d.kind === kind && d.metadata.name === name) ?? want, true);
    }
    const restored = this.#o.restore ? restoredConfiguration(want, actual, caBundle) : withCaBundle(actual, caBundle);
    try {
      // resourceVersion from the read: a change in between is a 409, and the next round looks again.
      const res = await this.#put(path, restored);
      const body = (await res.json().catch(() => undefined)) as ({ message?: string } & Partial<WebhookConfiguration>) | undefined;
      if (res.status !== 200) {
        return fail(reasonOf(res.status), `PUT ${path}: HTTP ${res.status}${permissionHint(res.status, 'update', CONFIGURATION_RESOURCES[kind], name)}: ${body?.message ?? ''}`);
      }
      if (this.#o.restore && !ownBundle && isConfiguration(body)) await this.#handBack(path, body, caBundle !== undefined);
    } catch (err) {
      return fail('unreachable', `PUT ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
    m.inSync.set(label, 1);
    this.#lastLogged.set(kind, 'in-sync');
    if (ownBundle) {
      this.#o.logger.info({ configuration: kind, name }, `set the caBundle of the ${kind} ${name}`);
      return { kind, name, state: 'ca-bundle', drift };
    }
    m.restores.inc(label);
    this.#o.logger.warn({ configuration: kind, name, drift }, `the ${kind} ${name} was changed behind the guard: restored as declared`);
    return { kind, name, state: 'restored', drift };
  }

  #put(path: string, body: WebhookConfiguration): Promise<Response> {
    return kubeFetch(this.#o.connection, `${path}?fieldManager=${GUARD_FIELD_MANAGER}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  }

  /**
   * Gives the fields a restore put back to the chart's apply manager (see
   * field-ownership.ts), so that the next `helm upgrade` changes them without a conflict.
   * A failure only costs that: logged, and the configuration stays as restored.
   */
  async #handBack(path: string, written: WebhookConfiguration, keepCaBundle: boolean): Promise<void> {
    const entries = written.metadata.managedFields;
    const next = Array.isArray(entries) ? handedBack(entries as ManagedFieldsEntry[], { keepCaBundle }) : undefined;
    if (next === undefined) return;
    const res = await this.#put(path, { ...written, metadata: { ...written.metadata, managedFields: next } });
    if (res.status === 200) return;
    const body = (await res.json().catch(() => undefined)) as { message?: string } | undefined;
    this.#o.logger.warn(
      { path, status: res.status },
      `could not hand the restored fields back to the chart's field manager (a helm upgrade may report a conflict on them): ${body?.message ?? ''}`,
    );
  }

  #logOnce(key: string, state: string, log: () => void): void {
    if (this.#lastLogged.get(key) === state) return;
    this.#lastLogged.set(key, state);
    log();
  }
}

function withCaBundle(actual: WebhookConfiguration, caBundle: string | undefined): WebhookConfiguration {
  if (caBundle === undefined) return actual;
  return { ...actual, webhooks: actual.webhooks.map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle } })) };
}

function reasonOf(status: number): string {
  if (status === 401 || status === 403) return 'forbidden';
  if (status === 409) return 'conflict';
  if (status === 422) return 'invalid';
  return 'http';
}

/** Says which permission a 403 lacks, so a reduced role is diagnosed from the log alone. */
function permissionHint(status: number, verb: string, resource: string, name: string): string {
  return status === 403 ? ` (forbidden: the guard's service account needs "${verb}" on ${resource} "${name}")` : '';
}
