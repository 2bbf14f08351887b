import { z } from 'zod';
import { durationMs as duration } from './duration.ts';

/**
 * How the guard stops: on SIGTERM it reports not ready and keeps serving for `period`
 * (the Service's endpoints and the API server need that long to stop sending), then
 * finishes the reviews in flight, for at most `inFlightTimeout`, and exits.
 */
export const drainConfig = z
  .strictObject({
    period: duration.default(0),
    inFlightTimeout: duration.default(15_000),
  })
  .prefault({});

/**
 * Where the serving certificate comes from on a cluster. `self`: the guard keeps a CA and
 * serving certificate in the Secret `secret` of its namespace, writes them into `tls.dir`,
 * keeps both webhook configurations' caBundle, and rotates. `external` (cert-manager, or
 * files someone else provides): the guard only serves what is in `tls.dir`. Without a
 * cluster, or without `secret`, `tls.dir` alone is used, as before.
 */
export const certificatesConfig = z
  .strictObject({
    mode: z.enum(['self', 'external']).default('self'),
    /** The Secret (in `cluster.namespace`) holding the self-managed CA and serving certificate. */
    secret: z.string().optional(),
    /** A certificate or CA this close to expiry is replaced. */
    renewBeforeDays: z.number().int().min(1).default(30),
    /** How often the Secret and the expiry are checked. */
    checkInterval: duration.default(60_000),
    /** How often `tls.dir` is re-read, to serve rotated files without a restart. */
    reloadInterval: duration.default(10_000),
    /**
     * The Service whose ready endpoints are the replicas: a CA leaves the bundle only when
     * all of them serve a certificate of the new one. Empty: this process is the only replica.
     */
    peers: z.string().default(''),
  })
  .prefault({});

/**
 * The webhook configurations' reconciler: the desired state is the ConfigMap `configMap`
 * (key `webhooks.yaml`) in `cluster.namespace`, which the chart renders from the same
 * values as the configurations themselves.
 */
export const reconcileConfig = z
  .strictObject({
    enabled: z.boolean().default(false),
    configMap: z.string().optional(),
    interval: duration.default(10_000),
  })
  .prefault({});
