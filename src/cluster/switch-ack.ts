import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { switchesDigest } from '../core/switches.ts';
import { type KubeConnection, kubeFetch } from './kube-http.ts';
import type { SwitchData } from './switch-store.ts';

/**
 * Each guard replica acknowledges the switches it applies: a Lease per replica in the
 * guard's namespace (`replica-guard-ack-<instance>`), renewed every few seconds, whose
 * annotation holds the digest of the switch map in force. `replica-guard shutdown` waits
 * until every live replica (renewed recently) acknowledges the map holding its freeze.
 */
export const ACK_PREFIX = 'replica-guard-ack-';
export const ACK_DIGEST_ANNOTATION = 'replica-guard.io/switches-digest';
const ACK_LABELS = { 'app.kubernetes.io/name': 'replica-guard', 'app.kubernetes.io/component': 'switch-ack' };

/** A Lease name from a replica's name (its pod name). */
export function ackLeaseName(instance: string): string {
  const safe = instance.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63 - ACK_PREFIX.length);
  return `${ACK_PREFIX}${safe || 'replica'}`;
}

/** Kubernetes' MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface AckPublisherOptions {
  readonly connection: KubeConnection;
  readonly namespace: string;
  readonly instance: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How often the Lease is renewed when nothing changes (default 5 s). */
  readonly renewMs?: number | undefined;
}

/** Publishes this replica's acknowledgement; `applied` is called with each switch map it applies. */
export class AckPublisher {
  readonly #options: AckPublisherOptions;
  readonly #name: string;
  #digest: string | undefined;
  #published: string | undefined;
  #lastWriteMs = Number.NEGATIVE_INFINITY;
  #writing: Promise<void> | undefined;
  #failing = false;

  constructor(options: AckPublisherOptions) {
    this.#options = options;
    this.#name = ackLeaseName(options.instance);
  }

  /** Notes the map now in force; writes the Lease when its digest changed or the renewal is due. */
  applied(data: SwitchData): void {
    this.#digest = switchesDigest(data);
    const due = this.#options.clock.monotonicMs() - this.#lastWriteMs >= (this.#options.renewMs ?? 5_000);
    if ((this.#digest !== this.#published || due) && this.#writing === undefined) {
      this.#writing = this.#write().finally(() => {
        this.#writing = undefined;
      });
    }
  }

  /** Resolves when no write is in flight (tests, shutdown). */
  async settled(): Promise<void> {
    await this.#writing;
  }

  async #write(): Promise<void> {
    const { connection, namespace, instance, clock, logger } = this.#options;
    const digest = this.#digest;
    if (digest === undefined) return;
    const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
    const spec = { holderIdentity: instance, leaseDurationSeconds: 15, renewTime: microTime(clock.now()) };
    try {
      const got = await kubeFetch(connection, `${path}/${this.#name}`, { method: 'GET', signal: AbortSignal.timeout(5_000) });
      const current = got.status === 200 ? ((await got.json()) as { metadata: Record<string, unknown> & { annotations?: Record<string, string> } }) : undefined;
      if (got.status !== 200) await got.arrayBuffer();
      if (got.status !== 200 && got.status !== 404) throw new Error(`reading Lease ${this.#name} answered HTTP ${got.status}`);
      const metadata = current
        ? { ...current.metadata, annotations: { ...current.metadata.annotations, [ACK_DIGEST_ANNOTATION]: digest } }
        : { name: this.#name, namespace, labels: ACK_LABELS, annotations: { [ACK_DIGEST_ANNOTATION]: digest } };
      const body = JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec });
      const res = await kubeFetch(connection, current ? `${path}/${this.#name}` : path, {
        method: current ? 'PUT' : 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(5_000),
      });
      await res.arrayBuffer();
      if (res.status !== 200 && res.status !== 201) throw new Error(`writing Lease ${this.#name} answered HTTP ${res.status}`);
      this.#published = digest;
      this.#lastWriteMs = clock.monotonicMs();
      this.#failing = false;
    } catch (err) {
      // Retried at the next read of the switches; a shutdown waits for it meanwhile.
      if (!this.#failing) logger.warn({ err, lease: this.#name }, "could not acknowledge the safety switches (the guard's RBAC needs get, create and update on leases)");
      this.#failing = true;
    }
  }
}

/** One replica's acknowledgement as read back. */
export interface SwitchAck {
  readonly instance: string;
  readonly digest: string | undefined;
  /** Epoch milliseconds of the last renewal. */
  readonly renewedMs: number;
}

/** The acknowledgements in the guard's namespace (every Lease named `replica-guard-ack-*`). */
export async function readAcks(connection: KubeConnection, namespace: string): Promise<SwitchAck[]> {
  const res = await kubeFetch(connection, `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`, {
    method: 'GET',
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`listing leases in ${namespace} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
  const body = JSON.parse(text) as {
    items?: { metadata?: { name?: string; annotations?: Record<string, string> }; spec?: { holderIdentity?: string; renewTime?: string } }[];
  };
  return (body.items ?? [])
    .filter((l) => l.metadata?.name?.startsWith(ACK_PREFIX))
    .map((l) => ({
      instance: l.spec?.holderIdentity ?? l.metadata?.name ?? '',
      digest: l.metadata?.annotations?.[ACK_DIGEST_ANNOTATION],
      renewedMs: Date.parse(l.spec?.renewTime ?? '') || 0,
    }));
}
