import { z } from 'zod';

const count = z.number().int().min(0);

/** The facts a case states instead of a cluster: what a decision depends on. */
export const caseFactsSchema = z.strictObject({
  need: z
    .union([count, z.literal('unmeasured'), z.strictObject({ unavailable: z.string() })])
    .optional()
    .describe('the need (a number), "unmeasured" (no load signal), or { unavailable: reason }; default: the policy need.static'),
  family: z
    .strictObject({
      workloads: count.default(0).describe('workloads in the family besides this one'),
      potential: count.default(0).describe('their potential instances'),
    })
    .optional()
    .describe('the rest of the agent family; default: empty'),
  rateUsed: count.optional().describe('potential instances the family added within the rate window; default 0'),
  losses: count.optional().describe('instances the family lost within the underPressure window; default 0'),
  nodes: count.optional().describe('nodes a DaemonSet may run on; default 3'),
  parent: z
    .union([z.literal('unknown'), z.strictObject({ maxSurge: z.union([count, z.string().regex(/^\d+%$/)]).optional() })])
    .optional()
    .describe("for a Scale: the parent workload (its surge), or 'unknown'; default: known, no surge"),
  clone: z.boolean().optional().describe('the new workload clones a family member (need 0 unless clones are allowed)'),
});

/** What a case expects. */
export const caseExpectSchema = z.strictObject({
  allowed: z.boolean().describe('whether the request is allowed'),
  patched: count.optional().describe('the count the mutating webhook patches to (mutate only)'),
  limit: z.string().optional().describe('the binding limit (audit annotation "limit")'),
  message: z.string().optional().describe('a fragment the denial message or a warning must contain'),
});

export const policyCaseSchema = z.strictObject({
  name: z.string().min(1),
  review: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).describe('a path to a review (relative to this file) or the review itself'),
  webhook: z.enum(['mutate', 'validate']).default('validate'),
  facts: caseFactsSchema.prefault({}),
  expect: caseExpectSchema,
});

/** A file of policy cases, read by `replica-guard test`. */
export const policyTestFileSchema = z.strictObject({
  apiVersion: z.literal('replica-guard.io/v1alpha1'),
  kind: z.literal('PolicyTest'),
  policies: z.union([z.string(), z.array(z.string())]).describe('policy files or directories, relative to this file'),
  cases: z.array(policyCaseSchema).min(1),
});

export type PolicyTestFile = z.infer<typeof policyTestFileSchema>;
export type PolicyCase = z.infer<typeof policyCaseSchema>;
export type CaseFacts = z.infer<typeof caseFactsSchema>;
