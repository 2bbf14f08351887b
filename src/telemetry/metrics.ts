import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Buckets from 50 µs to 10 s: the fast path answers in microseconds, a slow load source takes seconds. */
export const LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Every metric the guard exports, registered on a registry the caller owns. */
export interface GuardMetrics {
  readonly registry: Registry;
  /** Reviews answered, by webhook, verdict, kind and operation. */
  readonly requests: Counter<'webhook' | 'verdict' | 'kind' | 'operation'>;
  /** Time from a parsed body to the answer, by webhook and path (fast: not an agent; unclamped: a mutating call, whatever it writes, for an agent no policy of which can clamp; agent: decided). */
  readonly duration: Histogram<'webhook' | 'path'>;
  /** Errors answered with a stable code. */
  readonly errors: Counter<'code'>;
  /** Writes by agents of resources the guard does not understand (allowed with a warning). */
  readonly unknownKinds: Counter<'resource'>;
  /** Policy reload attempts by outcome (applied, unchanged, rejected). */
  readonly policyReloads: Counter<'outcome'>;
  /** Policy reloads that were rejected (a broken file, an empty set). */
  readonly policyReloadErrors: Counter;
  /** Policies in the set that decides now. */
  readonly policiesLoaded: Gauge;
  /** When the current policy set was loaded, as a Unix timestamp. */
  readonly policySetLoadedTime: Gauge;
  /** When the serving certificate expires, as a Unix timestamp. */
  readonly certificateExpiry: Gauge;
  /** Load lookups that gave no load, by source and reason class. */
  readonly loadSourceErrors: Counter<'source' | 'reason'>;
  /** Age of each cache of the cluster view: time since its reflector last heard from the API. */
  readonly viewCacheAge: Gauge<'resource'>;
  /** Objects in each cache of the cluster view. */
  readonly viewObjects: Gauge<'resource'>;
  /** Watches re-established, by resource and reason (closed, stalled, expired, error). */
  readonly viewWatchRestarts: Counter<'resource' | 'reason'>;
  /** Objects whose counted fields have a shape the guard refuses. */
  readonly viewRejectedObjects: Counter<'resource'>;
  /** Instances lost by agent families, as the view saw them (pod ends, counts lowered by others). */
  readonly losses: Counter<'kind'>;
  /** Workloads the embedded default's view forgot to stay within `facts.maxWorkloads`. */
  readonly viewEvictions: Counter;
}

/** Something whose current state the view gauges read at scrape time. */
export interface Collectable {
  collect(): void;
}

/** Creates the guard's metrics on the given registry (never prom-client's global one). */
export function createMetrics(registry: Registry, view?: () => Collectable | undefined): GuardMetrics {
  const registers = [registry];
  // Both view gauges are filled at scrape time from the view itself, so neither shows a
  // previous scrape's value.
  const collectView = () => view?.()?.collect();
  return {
    registry,
    requests: new Counter({
      name: 'replica_guard_admission_requests_total',
      help: 'Admission reviews answered, by webhook, verdict (allowed, denied, patched, error), kind and operation.',
      labelNames: ['webhook', 'verdict', 'kind', 'operation'],
      registers,
    }),
    duration: new Histogram({
      name: 'replica_guard_admission_duration_seconds',
      help: "Time to answer an admission review, by webhook and path (fast: not an agent; unclamped: a mutating call for an agent none of whose policies is in clamp mode, allowed at once; agent: decided).",
      labelNames: ['webhook', 'path'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    errors: new Counter({
      name: 'replica_guard_errors_total',
      help: 'Errors answered with a stable RG_ERR_* code.',
      labelNames: ['code'],
      registers,
    }),
    unknownKinds: new Counter({
      name: 'replica_guard_unknown_kind_requests_total',
      help: 'Agent writes of resources the guard does not understand; allowed with a warning.',
      labelNames: ['resource'],
      registers,
    }),
    policyReloads: new Counter({
      name: 'replica_guard_policy_reloads_total',
      help: 'Policy reloads by outcome (applied, unchanged, rejected).',
      labelNames: ['outcome'],
      registers,
    }),
    policyReloadErrors: new Counter({
      name: 'replica_guard_policy_reload_errors_total',
      help: 'Policy reloads rejected because a file was invalid or the set would be empty; the last good set keeps deciding.',
      registers,
    }),
    policiesLoaded: new Gauge({
      name: 'replica_guard_policies',
      help: 'Policies in the set that decides now.',
      registers,
    }),
    policySetLoadedTime: new Gauge({
      name: 'replica_guard_policy_set_loaded_timestamp_seconds',
      help: 'When the policy set that decides now was loaded.',
      registers,
    }),
    certificateExpiry: new Gauge({
      name: 'replica_guard_certificate_expiry_timestamp_seconds',
      help: 'When the serving certificate expires.',
      registers,
    }),
    loadSourceErrors: new Counter({
      name: 'replica_guard_load_source_errors_total',
      help:
        'Load lookups that gave no load, by source (prometheus, metrics-api, hpa) and reason (unreachable, timeout, http, query, ' +
        'bad_response, no_series, not_configured, unknown_workload, no_target, untrusted, no_metrics, no_requests). ' +
        "no_series is answered with need.min, the rest with the policy's onUnavailable. Counts lookups sent, not answers served from the cache.",
      labelNames: ['source', 'reason'],
      registers,
    }),
    viewCacheAge: new Gauge({
      name: 'replica_guard_view_cache_age_seconds',
      help: 'Seconds since each cache of the cluster view last heard from the API (bookmarks included).',
      labelNames: ['resource'],
      registers,
      collect: collectView,
    }),
    viewObjects: new Gauge({
      name: 'replica_guard_view_objects',
      help: 'Objects in each cache of the cluster view.',
      labelNames: ['resource'],
      registers,
      collect: collectView,
    }),
    viewWatchRestarts: new Counter({
      name: 'replica_guard_view_watch_restarts_total',
      help: 'Watches of the cluster view re-established, by resource and reason (closed, stalled, expired, error).',
      labelNames: ['resource', 'reason'],
      registers,
    }),
    viewRejectedObjects: new Counter({
      name: 'replica_guard_view_rejected_objects_total',
      help: 'Objects whose counted fields have a shape the guard refuses; they are left out of the view.',
      labelNames: ['resource'],
      registers,
    }),
    losses: new Counter({
      name: 'replica_guard_losses_total',
      help: 'Instances lost by agent families as the view saw them, by kind (pod: a pod ended, count: a count lowered by someone else).',
      labelNames: ['kind'],
      registers,
    }),
    viewEvictions: new Counter({
      name: 'replica_guard_view_evictions_total',
      help: "Workloads the embedded default's view (no cluster) forgot, least recently written first, to stay within facts.maxWorkloads.",
      registers,
    }),
  };
}
