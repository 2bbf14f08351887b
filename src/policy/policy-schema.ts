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
  })
  .refine((n) => n.min === undefined || n.max === undefined || n.min <= n.max, {
    error: 'need.min cannot be greater than need.max',
    path: ['min'],
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
