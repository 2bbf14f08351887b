import { z } from 'zod';

/** The only apiVersion a policy document may carry in this version. */
export const POLICY_API_VERSION = 'replica-guard.io/v1alpha1';
/** The only kind a policy document may carry. */
export const POLICY_KIND = 'ReplicaPolicy';

const count = (what: string) =>
  z
    .number({ error: `${what} must be a whole number` })
    .int({ error: `${what} must be a whole number` })
    .min(0, { error: `${what} cannot be negative` });

const globList = (what: string) =>
  z.array(z.string().min(1, { error: `a ${what} pattern cannot be empty` }), {
    error: `${what} must be a list of patterns`,
  });

/**
 * Limits a policy sets. Every field is optional: an absent limit does not apply.
 * Counts are steady counts except `perFamily`, which bounds potential instances.
 */
export const limitsSchema = z.strictObject({
  headroom: count('headroom').optional().describe('instances allowed above the need (steady count)'),
  perWorkload: count('perWorkload').optional().describe('highest steady count of one workload'),
  perFamily: count('perFamily')
    .optional()
    .describe("highest number of potential instances (steady + surge + CronJob overlap) across the agent's family"),
  workloadsPerFamily: count('workloadsPerFamily').optional().describe('how many workloads the family may hold'),
  step: count('step').optional().describe('largest growth of the steady count in one request, CREATE included'),
  cronJobOverlap: z
    .number({ error: 'cronJobOverlap must be a whole number' })
    .int({ error: 'cronJobOverlap must be a whole number' })
    .min(1, { error: 'cronJobOverlap must be at least 1' })
    .optional()
    .describe('runs of a CronJob with concurrencyPolicy Allow counted as running at once (default 1)'),
  rate: z
    .strictObject({
      instances: count('rate.instances').describe('instances the family may add within the window'),
      per: duration('rate.per').describe('the sliding window, e.g. 5m'),
    })
    .optional()
    .describe("instances added per family per window: what stops 1 → 2 → 4 → 8"),
});

/** A duration written as 30s, 5m, 1h (or ms): kept as written, read by {@link durationToMs}. */
function duration(what: string) {
  return z
    .string({ error: `${what} must be a duration such as 30s, 5m or 1h` })
    .regex(/^[1-9]\d*(ms|s|m|h)$/, { error: `${what} must be a duration such as 30s, 5m or 1h` });
}

/** Milliseconds of a duration accepted by the schema (`30s`, `5m`, `1h`, `500ms`). */
export function durationToMs(text: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

const positive = (what: string) =>
  z.number({ error: `${what} must be a number` }).positive({ error: `${what} must be greater than 0` });

/** Load read from Prometheus: the workload's total load against what one instance serves. */
export const prometheusNeedSchema = z
  .strictObject({
    query: z
      .string({ error: 'need.prometheus.query must be a PromQL expression' })
      .min(1)
      .describe('instant query templated with {{namespace}}, {{name}} and {{kind}}; returns the total load'),
    targetPerInstance: positive('need.prometheus.targetPerInstance')
      .optional()
      .describe('load one instance serves within its latency goal (need = ceil(load / target))'),
    latencyTarget: positive('need.prometheus.latencyTarget')
      .optional()
      .describe(
        'alternatively, a latency goal the query returns against (a weaker signal: latency is flat until saturation, then explodes)',
      ),
  })
  .refine((p) => (p.targetPerInstance === undefined) !== (p.latencyTarget === undefined), {
    error: 'need.prometheus needs exactly one of targetPerInstance or latencyTarget',
  });

export const needSchema = z
  .strictObject({
    static: count('need.static')
      .optional()
      .describe('the need used where no load signal exists (and by the embedded default)'),
    min: count('need.min').optional().describe('lowest need, also the need of a workload with no load yet'),
    max: count('need.max').optional().describe('highest need'),
    onUnavailable: z
      .enum(['hold', 'caps', 'deny'], { error: 'onUnavailable must be one of hold, caps, deny' })
      .default('hold')
      .describe('hold: the current count is the need (0 on CREATE); caps: judge by caps alone; deny: deny growth'),
    prometheus: prometheusNeedSchema.optional().describe('need from a PromQL query of the workload\'s load'),
    metricsApi: z
      .strictObject({
        targetCpuUtilization: z
          .number({ error: 'need.metricsApi.targetCpuUtilization must be a percentage' })
          .int()
          .min(1)
          .max(1000)
          .describe('average CPU utilisation per pod, in percent of requests, that one instance should run at'),
      })
      .optional()
      .describe('need from CPU utilisation of the workload\'s pods (metrics.k8s.io)'),
    hpa: z
      .strictObject({})
      .optional()
      .describe("need from the workload's HPA desired replicas; trusted only when the agent's family cannot write that HPA"),
  })
  .refine((n) => n.min === undefined || n.max === undefined || n.min <= n.max, {
    error: 'need.min cannot be greater than need.max',
    path: ['min'],
  })
  .refine((n) => [n.prometheus, n.metricsApi, n.hpa].filter((x) => x !== undefined).length <= 1, {
    error: 'need takes at most one load source: prometheus, metricsApi or hpa',
  });

export const agentsSchema = z
  .strictObject({
    serviceAccounts: globList('serviceAccounts')
      .default([])
      .describe('service accounts as namespace:name globs ("agents:*")'),
    users: globList('users').default([]).describe('user names, globs'),
    groups: globList('groups').default([]).describe('group names, globs'),
  })
  .refine((a) => a.serviceAccounts.length + a.users.length + a.groups.length > 0, {
    error: 'agents must name at least one service account, user or group',
  });

export const policySpecSchema = z.strictObject({
  mode: z
    .enum(['enforce', 'clamp', 'audit'], { error: 'mode must be one of enforce, clamp, audit' })
    .describe('enforce denies growth beyond the allowance, clamp lowers it, audit only records and warns'),
  agents: agentsSchema.describe(
    'the identities this policy treats as agents; controllers (kube-system service accounts, system:kube-*, system:node:*) never are',
  ),
  namespaces: globList('namespaces')
    .optional()
    .describe("narrows serviceAccounts to these namespaces of the service account (users and groups ignore it)"),
  need: needSchema.default({ onUnavailable: 'hold' }).describe('how the need (instances the load requires) is bounded and what happens without it'),
  limits: limitsSchema.default({}).describe('caps on growth; an absent limit does not apply'),
  underPressure: z
    .strictObject({
      window: duration('underPressure.window').default('10m').describe('how long after a loss the limits apply'),
      limits: limitsSchema.describe('the same fields as limits: absent means no limit, 0 means nothing'),
    })
    .optional()
    .describe('limits that apply after the family lost instances within the window'),
  clones: z
    .strictObject({
      allowed: z.boolean().default(false).describe('when false, a new workload that clones a family member is denied, whatever its size'),
      ignoreImages: globList('clones.ignoreImages')
        .default([])
        .describe('image repositories that never mark a clone (common base images), globs'),
    })
    .prefault({})
    .describe('how clones of family members are judged'),
  justification: z
    .strictObject({
      required: z
        .enum(['beyondNeed', 'always'], { error: 'justification.required must be beyondNeed or always' })
        .describe('beyondNeed: growth past the need must carry it; always: every growth must'),
    })
    .optional()
    .describe(
      'growth must carry the agent\'s reasoning in the replica-guard.io/justification annotation, fresh for that growth (changed in the request, or since the family\'s last recorded growth); a Scale is judged by its parent\'s',
    ),
  podServiceAccounts: globList('podServiceAccounts')
    .optional()
    .describe(
      'service accounts the pods an agent defines may run as: names or namespace:name globs; "{self}" is the agent\'s own name. Default: ["{self}"] for service-account agents, ["default"] for others',
    ),
});

export const policyDocumentSchema = z.strictObject({
  apiVersion: z.literal(POLICY_API_VERSION, { error: `apiVersion must be ${POLICY_API_VERSION}` }).describe(`always ${POLICY_API_VERSION}`),
  kind: z.literal(POLICY_KIND, { error: `kind must be ${POLICY_KIND}` }).describe(`always ${POLICY_KIND}`),
  metadata: z.looseObject({
    name: z
      .string({ error: 'metadata.name is required' })
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, {
        error: 'metadata.name must be lowercase letters, digits, "-" or ".", starting and ending with a letter or digit',
      })
      .max(253)
      .describe('unique name of the policy, shown in messages, metrics and audit lines'),
  }),
  spec: policySpecSchema.describe('who the agents are and how far they may grow'),
});

/** A policy document as parsed from a file. */
export type PolicyDocument = z.infer<typeof policyDocumentSchema>;
export type PolicyLimits = z.infer<typeof limitsSchema>;
export type PolicyNeed = z.infer<typeof needSchema>;
export type PolicyMode = PolicyDocument['spec']['mode'];
