import { z } from 'zod';
import { BUILT_IN_KINDS } from './admission/workload-kinds.ts';
import { DEFAULT_MAX_AGENTS } from './cluster/in-memory-ledger.ts';
import { DEFAULT_MAX_WORKLOADS } from './cluster/in-memory-view.ts';
import { MAX_METRICS_WINDOW_MS } from './core/ledger-state.ts';
import { NORMALISATIONS, riskDefaults, type RiskSettings } from './core/risk.ts';
import { riskMetricsDefaults } from './telemetry/risk-metrics.ts';
import { byteSize } from './record/byte-size.ts';
import { durationMs } from './duration.ts';
import { certificatesConfig, drainConfig, reconcileConfig } from './operations-config.ts';

const port = z.number().int().min(0).max(65535);

export { durationMs } from './duration.ts';

/**
 * The built-in kinds the guard reads on its own, as `group/kind` and `group/resource`: a
 * custom mapping may claim neither (nor the core group, which `group` cannot be empty for).
 */
const BUILT_IN_NAMES = new Set([...BUILT_IN_KINDS.values()].flatMap((k) => [`${k.group}/${k.kind}`, `${k.group}/${k.resource}`]));

/**
 * Each custom kind and resource mapped once, and none of the built-in ones: the view
 * keys objects by group, kind, namespace and name, so two mappings of one kind would
 * overwrite each other's objects and read each as the other's deletion.
 */
function rejectOverlappingMappings(
  mappings: readonly { readonly group: string; readonly kind: string; readonly resource: string }[],
  ctx: z.RefinementCtx,
): void {
  const seen = new Map<string, number>();
  mappings.forEach((m, i) => {
    for (const [field, name] of [
      ['kind', `${m.group}/${m.kind}`],
      ['resource', `${m.group}/${m.resource}`],
    ] as const) {
      if (BUILT_IN_NAMES.has(name)) {
        ctx.addIssue({ code: 'custom', path: [i, field], message: `${name} is read by the guard itself; map only custom resources` });
        continue;
      }
      const at = seen.get(`${field}:${name}`);
      if (at === undefined) seen.set(`${field}:${name}`, i);
      else ctx.addIssue({ code: 'custom', path: [i, field], message: `${name} is already mapped at customResources.${at}; map each ${field} once` });
    }
  });
}

/**
 * The process configuration. Every field has a default, so an empty file (or none) is
 * the embedded default: webhooks on https://127.0.0.1:8443, metrics and probes on
 * http://127.0.0.1:8080, certificates in certs/, policies in policies/.
 */
export const configSchema = z.strictObject({
  webhook: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: port.default(8443),
    })
    .prefault({}),
  ops: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: port.default(8080),
    })
    .prefault({}),
  tls: z
    .strictObject({
      /** Where ca.crt, ca.key, tls.crt and tls.key live; generated there on first start. */
      dir: z.string().default('certs'),
      dnsNames: z.array(z.string()).default(['localhost', 'replica-guard', 'replica-guard.replica-guard.svc']),
      ipAddresses: z.array(z.string()).default(['127.0.0.1', '::1']),
    })
    .prefault({}),
  policies: z
    .strictObject({
      dir: z.string().default('policies'),
      /** Accept a policy set with no policies (refused by default: it would let every agent loose). */
      allowEmpty: z.boolean().default(false),
      pollInterval: durationMs.default(30_000),
    })
    .prefault({}),
  facts: z
    .strictObject({
      /** Nodes of the cluster when none is connected: a DaemonSet's instances. */
      nodeCount: z.number().int().min(0).default(3),
      /** Or the nodes themselves, with labels, to judge DaemonSet node selectors. */
      nodes: z.array(z.strictObject({ name: z.string(), labels: z.record(z.string(), z.string()).default({}) })).optional(),
      /**
       * Workloads the view built from admitted requests keeps, the least recently written
       * out: a forgotten workload no longer counts in its agent's family.
       */
      maxWorkloads: z.number().int().min(1).default(DEFAULT_MAX_WORKLOADS),
    })
    .prefault({}),
  deadline: z
    .strictObject({
      /** The guard answers this long before the apiserver's timeout. */
      margin: durationMs.default(2000),
      /** Assumed when a call carries no `?timeout=` (the apiserver's default is 10 s). */
      defaultTimeout: durationMs.default(10_000),
    })
    .prefault({}),
  /** Resources beyond the built-in kinds that run instances and have a scale subresource. */
  scaleResources: z
    .array(
      z.strictObject({
        group: z.string(),
        resource: z.string(),
        kind: z.string(),
        replicasPath: z.string().default('spec.replicas'),
      }),
    )
    .default([]),
  /**
   * The cluster. Without `kubeconfig` or `inCluster` the guard runs on its embedded
   * default: a view built from the requests it sees and an in-memory ledger.
   */
  cluster: z
    .strictObject({
      /** A kubeconfig file; or set `inCluster` to use the pod's service account. */
      kubeconfig: z.string().optional(),
      context: z.string().optional(),
      inCluster: z.boolean().default(false),
      /** The guard's own namespace, where the shared ledger's ConfigMaps live. */
      namespace: z.string().default('replica-guard'),
    })
    .prefault({}),
  view: z
    .strictObject({
      /** Facts from a view older than this are unknown (the policy's onUnavailable decides). */
      maxStaleness: durationMs.default(60_000),
      pageSize: z.number().int().min(1).max(10_000).default(500),
      listConcurrency: z.number().int().min(1).max(20).default(2),
      /** The apiserver sends a bookmark about once a minute; a watch silent for stallFactor × this is re-established. */
      bookmarkInterval: durationMs.default(60_000),
      stallFactor: z.number().min(1).default(2),
      requestTimeout: durationMs.default(60_000),
      /** A pod ending this long after its owner's count dropped is not a loss. */
      lossGrace: durationMs.default(60_000),
      /** How long a pod's end waits for the other watches' events before it is judged. */
      lossSettle: durationMs.default(5_000),
      /** How long a SubjectAccessReview answer (may the agent write this HPA?) is reused. */
      accessReviewTtl: durationMs.default(60_000),
      /** Deadline of one SubjectAccessReview; past it the agent counts as able to write. */
      accessReviewTimeout: durationMs.default(1_000),
      /**
       * Custom resources that run pods without a scale subresource (a RayCluster, a KEDA
       * ScaledObject, a Knative Service): counted by paths, in the view and in admission.
       * Paths are dotted; `[]` steps into every element of an array.
       */
      customResources: z
        .array(
          z.strictObject({
            group: z.string().min(1),
            version: z.string().min(1),
            resource: z.string().min(1),
            kind: z.string().min(1),
            countPaths: z.array(z.string().min(1)).min(1),
            defaultCount: z.number().int().min(0).optional(),
            fixedCount: z.number().int().min(0).optional(),
            podTemplatePaths: z.array(z.string().min(1)).default([]),
          }),
        )
        .superRefine(rejectOverlappingMappings)
        .default([]),
    })
    .prefault({}),
  ledger: z
    .strictObject({
      /**
       * How long episode keys and held requests are kept. Raised to `metrics.window` when
       * shorter, so that a retry within the metrics window is never counted twice.
       */
      window: durationMs.default(3_600_000),
      /**
       * Full episode records kept in process memory for inspection; 0 (the default): none.
       * Nothing decides from them: the shared state keeps episode keys and risk buckets.
       */
      maxEpisodes: z.number().int().min(0).default(0),
      /**
       * The embedded default's in-memory ledger keeps at most this many agents' states, the
       * least recently used out (its rate window and episode keys then restart).
       */
      maxAgents: z.number().int().min(1).default(DEFAULT_MAX_AGENTS),
      /** Compare-and-swap attempts of one shared-ledger round before the growth is denied. */
      maxAttempts: z.number().int().min(1).max(50).default(6),
      /**
       * How often the housekeeping decisions only read (confirmations of growth the view now
       * shows, expiry, deleted workloads) is written, in the background. Must stay well
       * inside the two minutes a reservation waits for the view.
       */
      housekeepingInterval: durationMs
        .refine((ms) => ms >= 100 && ms <= 60_000, 'ledger.housekeepingInterval must lie between 100ms and 1m')
        .default(5_000),
      /**
       * How long the shared ledger answers a decision that writes nothing from the state it
       * last read or wrote, without asking the API server. A decision that writes always
       * writes by compare-and-swap, so an older state can never spend an allowance twice;
       * 0 reads every time.
       */
      readCacheTtl: durationMs.refine((ms) => ms <= 10_000, 'ledger.readCacheTtl must be at most 10s').default(1_000),
      /**
       * Allowance leases (cluster mode): each replica holds a share of an agent's rate and
       * family allowance, charged in the shared ledger, and admits growth within it without
       * a write before its answer (the write follows it). No replica can spend another's share.
       */
      leases: z
        .strictObject({
          /** The most instances one lease holds; a grant is at most half the room the policies leave. 0: no leases. */
          instances: z.number().int().min(0).max(1000).default(8),
          /**
           * How long a lease lives after its holder's last write; it is spent only in its first
           * two thirds. A replica that dies holding one leaves it charged to the rate this long.
           */
          ttl: durationMs.refine((ms) => ms >= 3_000 && ms <= 300_000, 'ledger.leases.ttl must lie between 3s and 5m').default(30_000),
          /** A lease unused this long is given back. */
          idle: durationMs.refine((ms) => ms >= 100 && ms <= 60_000, 'ledger.leases.idle must lie between 100ms and 1m').default(2_000),
          /**
           * How long growth admitted from a lease waits before it is written, so that a burst
           * shares one write and the API server is not written to once per growth. The lease
           * covers it meanwhile; a replica that dies before the write leaves it charged by the
           * lease until the lease expires, and its episodes uncounted in the risk metrics.
           */
          writeDelay: durationMs.refine((ms) => ms <= 5_000, 'ledger.leases.writeDelay must be at most 5s').default(250),
        })
        .prefault({}),
    })
    .prefault({}),
  load: z
    .strictObject({
      /** A source's failures are logged once per interval per reason class; the counter has every one. */
      failureLogInterval: durationMs.default(60_000),
      /** Where `need.prometheus` queries go; without it such policies fall back to onUnavailable. */
      prometheus: z
        .strictObject({
          /** Base URL of the Prometheus HTTP API; a path prefix is kept (`http://mon/prometheus`). */
          url: z.url({ protocol: /^https?$/, error: 'load.prometheus.url must be an http or https URL' }),
          /** Deadline of one query: well inside the webhook timeout minus deadline.margin. */
          timeout: durationMs.default(2_000),
          /** How long an answer is reused for the same query. */
          cacheTtl: durationMs.default(5_000),
          /** How long a failure is reused, so that a Prometheus that is down is not hammered. */
          failureTtl: durationMs.default(1_000),
          /** A file holding a bearer token sent with each query, read at start. */
          bearerTokenFile: z.string().optional(),
        })
        .optional(),
      /**
       * `need.metricsApi` on a cluster: PodMetrics from metrics.k8s.io through the API server
       * connection. Without a cluster (the embedded default) such policies fall back to onUnavailable.
       */
      metricsApi: z
        .strictObject({
          /** Deadline of one PodMetrics list: well inside the webhook timeout minus deadline.margin. */
          timeout: durationMs.default(2_000),
          /** How long a list is reused (metrics-server resolves every 15 s or so). */
          cacheTtl: durationMs.default(5_000),
          /** How long a failure is reused. */
          failureTtl: durationMs.default(1_000),
        })
        .prefault({}),
    })
    .prefault({}),
  /** The risk metrics (core/risk.ts, telemetry/risk-metrics.ts). */
  metrics: z
    .strictObject({
      /** The sliding window of the risk gauges (the recording rules take theirs as a parameter). */
      window: durationMs
        .refine((ms) => ms >= 60_000 && ms <= MAX_METRICS_WINDOW_MS, {
          error: `metrics.window must lie between 1m and ${MAX_METRICS_WINDOW_MS / 3_600_000}h (the ledger keeps one-minute buckets for at most that long)`,
        })
        .default(riskDefaults.windowMs),
      /** Agents with a label of their own; further agents are folded into `other`. */
      maxAgents: z.number().int().min(0).max(10_000).default(riskMetricsDefaults.maxAgents),
      /** Weights of OR and AOC_norm in ΦR; each in [0, 1], together at most 1. */
      alpha: z.number().min(0).max(1).default(riskDefaults.alpha),
      beta: z.number().min(0).max(1).default(riskDefaults.beta),
      /** Instances above need that are not overuse (0: any instance above need is, as in the paper). */
      tolerance: z.number().int().min(0).default(riskDefaults.tolerance),
      /** ΦR at or above this is high risk (dashboards and alerts). */
      highRiskLine: z.number().min(0).max(1).default(riskDefaults.highRiskLine),
      /** How AOC is brought into [0, 1]: `need-sum` is min(1, AOC / Σ need). */
      normalisation: z.enum(NORMALISATIONS).default(riskDefaults.normalisation),
      /** How long one read of the agents' ledger states serves scrapes of the gauges. */
      cacheTtl: durationMs.default(riskMetricsDefaults.cacheTtlMs),
    })
    .refine((m) => m.alpha + m.beta <= 1, {
      error: 'metrics.alpha + metrics.beta must not exceed 1 (ΦR would leave [0, 1])',
      path: ['beta'],
    })
    .prefault({}),
  /**
   * The recording of agent reviews the validating webhook decides (README "Recording");
   * off unless `dir` is set.
   */
  record: z
    .strictObject({
      dir: z.string().min(1).optional(),
      /** The run every record is labelled with; default: the time the guard started. */
      run: z.string().min(1).optional(),
      maxFileSize: byteSize.default(64 * 1024 ** 2),
      maxFileAge: durationMs.default(3_600_000),
      maxTotalSize: byteSize.default(1024 ** 3),
      /** Records waiting to be written; past it reviews are dropped from the recording and counted. */
      queueLength: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  drain: drainConfig,
  certificates: certificatesConfig,
  reconcile: reconcileConfig,
  /** The periodic check that agents cannot get around the guard through RBAC (on a cluster only): README "Doctor". */
  doctor: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** How often each policy's agent identities are checked with SubjectAccessReviews (also once at start). */
      interval: durationMs.default(300_000),
    })
    .prefault({}),
  /** Kubernetes Events for denials and clamps (on a cluster only): README "Events". */
  events: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Events per agent per minute at most: a runaway agent must not flood etcd. */
      perAgentPerMinute: z.number().int().min(0).max(1000).default(10),
    })
    .prefault({}),
  /** The safety switches (freeze, break-glass, exemptions): README "Safety switches". */
  switches: z
    .strictObject({
      /**
       * On the embedded default (no cluster): a YAML file holding the switch map (the same
       * keys and values as the switch ConfigMap's data). A missing file is no switch. On a
       * cluster the ConfigMap replica-guard-switches in cluster.namespace is the source.
       */
      file: z.string().default('switches.yaml'),
      /** How often the switches are read: a switch reaches every replica within this and one read. */
      pollInterval: durationMs.default(1000),
    })
    .prefault({}),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** The configuration after defaults. */
export type GuardConfig = z.output<typeof configSchema>;

/**
 * The risk settings in force: what the gauges compute with and what the rules generator
 * and the dashboard must use to agree with them. Without a configuration: `riskDefaults`.
 */
export function riskSettingsOf(config: Pick<GuardConfig, 'metrics'>): RiskSettings {
  const m = config.metrics;
  return {
    windowMs: m.window,
    alpha: m.alpha,
    beta: m.beta,
    tolerance: m.tolerance,
    highRiskLine: m.highRiskLine,
    normalisation: m.normalisation,
  };
}
