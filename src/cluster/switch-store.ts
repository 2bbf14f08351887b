import type { KubeConnection } from './kube-http.ts';
import { answerMessage, type KubeAnswer, kubeJson } from './kube-rest.ts';

/** The switch map's data: keys and values as in `core/switches.ts`. */
export type SwitchData = Readonly<Record<string, string>>;

/**
 * Where the switches live: a ConfigMap in the guard's namespace on a cluster, a file on
 * the embedded default. Both are read whole and changed by read → change → write, so two
 * writers never lose each other's switches.
 */
export interface SwitchStore {
  /** The source in words, for messages: `ConfigMap replica-guard/replica-guard-switches`. */
  readonly where: string;
  /** The current map; empty when the source does not exist yet. Throws when it cannot be read. */
  read(signal?: AbortSignal): Promise<SwitchData>;
  /**
   * Changes the map: `change` gets the current data and returns the new one, or undefined
   * to leave it as it is. Resolves with the data now stored.
   */
  update(change: (data: SwitchData) => SwitchData | undefined): Promise<SwitchData>;
}

/** The name of the switch ConfigMap in the guard's namespace. */
export const SWITCH_CONFIGMAP = 'replica-guard-switches';
export const SWITCH_LABELS: Readonly<Record<string, string>> = {
  'app.kubernetes.io/name': 'replica-guard',
  'app.kubernetes.io/component': 'switches',
};

/** A failure to read or write the switches, with the API's answer. */
export class SwitchStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SwitchStoreError';
  }
}

interface ConfigMapBody {
  metadata: { name: string; namespace?: string; resourceVersion?: string; [field: string]: unknown };
  data?: Record<string, string>;
  [field: string]: unknown;
}

/**
 * The switch ConfigMap, read and written through the Kubernetes API with the caller's
 * credentials (the guard's service account, or an operator's kubeconfig). Writes are
 * compare-and-swap on the resourceVersion, retried on a conflict.
 */
export class KubeSwitchStore implements SwitchStore {
  readonly where: string;
  readonly #connection: KubeConnection;
  readonly #namespace: string;
  readonly #name: string;
  readonly #timeoutMs: number;

  constructor(options: { connection: KubeConnection; namespace: string; name?: string; timeoutMs?: number }) {
    this.#connection = options.connection;
    this.#namespace = options.namespace;
    this.#name = options.name ?? SWITCH_CONFIGMAP;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.where = `ConfigMap ${this.#namespace}/${this.#name}`;
  }

  async read(signal?: AbortSignal): Promise<SwitchData> {
    return (await this.#get(signal)).data ?? {};
  }

  async update(change: (data: SwitchData) => SwitchData | undefined): Promise<SwitchData> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.#get();
      const next = change(current.data ?? {});
      if (next === undefined) return current.data ?? {};
      const exists = current.metadata.resourceVersion !== undefined;
      const body: ConfigMapBody = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        ...current,
        metadata: { ...current.metadata, labels: { ...(current.metadata.labels as object | undefined), ...SWITCH_LABELS } },
        data: { ...next },
      };
      const path = exists ? this.#path(this.#name) : this.#path();
      const res = await this.#call(exists ? 'PUT' : 'POST', path, body);
      if (res.status === 200 || res.status === 201) return next;
      // Written or created by someone else since the read: read again and re-apply.
      if ((res.status === 409 || res.status === 404) && attempt < 10) continue;
      throw new SwitchStoreError(`${exists ? 'updating' : 'creating'} ${this.where} answered HTTP ${res.status}: ${answerMessage(res)}`);
    }
  }

  async #get(signal?: AbortSignal): Promise<ConfigMapBody> {
    const res = await this.#call('GET', this.#path(this.#name), undefined, signal);
    if (res.status === 404) return { metadata: { name: this.#name, namespace: this.#namespace } };
    if (res.status !== 200 || !isConfigMap(res.body)) {
      throw new SwitchStoreError(`reading ${this.where} answered HTTP ${res.status}: ${answerMessage(res)}`);
    }
    return res.body;
  }

  #path(name?: string): string {
    const base = `/api/v1/namespaces/${encodeURIComponent(this.#namespace)}/configmaps`;
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }

  async #call(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<KubeAnswer> {
    try {
      return await kubeJson(this.#connection, method, path, body, this.#timeoutMs, signal);
    } catch (err) {
      throw new SwitchStoreError(`${method} ${this.where}: ${(err as Error).message}`, { cause: err });
    }
  }
}

function isConfigMap(body: unknown): body is ConfigMapBody {
  if (typeof body !== 'object' || body === null) return false;
  const metadata = (body as { metadata?: unknown }).metadata;
  if (typeof metadata !== 'object' || metadata === null) return false;
  const data = (body as { data?: unknown }).data;
  return data === undefined || (typeof data === 'object' && data !== null);
}
