import { z } from 'zod';
import { RECORDING_FORMAT, type ReviewRecord } from '../record/review-record.ts';

const count = z.number().int().min(0);
const nullableString = z.string().nullable();

const needFact = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('measured'), value: z.number().min(0), source: z.string() }),
  z.object({ kind: z.literal('unmeasured') }),
  z.object({ kind: z.literal('unavailable'), reason: z.string() }),
]);

const byWindow = z.record(z.string().regex(/^\d+$/, 'a window in milliseconds'), z.number().min(0));

const extra = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }),
  z.object({ type: z.literal('surge-fixed'), instances: count }),
  z.object({ type: z.literal('surge-percent'), percent: count }),
  z.object({ type: z.literal('overlap'), runs: count }),
  z.object({ type: z.literal('cronjob-allow') }),
]);

const recordedWorkload = z.object({
  ref: z.object({ group: z.string(), kind: z.string(), namespace: z.string(), name: z.string(), uid: z.string().optional() }),
  count: z.object({ steady: count, extra }),
});

/** A recording line as replay reads it; the request itself is checked as the webhook checks it. */
export const reviewRecordSchema = z.object({
  format: z.literal(RECORDING_FORMAT),
  time: z.string(),
  run: z.string(),
  webhook: z.literal('validate'),
  agent: z.string(),
  request: z.looseObject({}),
  policies: z.array(z.object({ name: z.string(), mode: z.enum(['enforce', 'clamp', 'audit']), version: z.string() })),
  facts: z.object({
    decidedBy: z.enum(['policies', 'deadline']),
    staleness: z.number().nullable(),
    stale: nullableString,
    nodes: z.array(z.object({ name: z.string(), labels: z.record(z.string(), z.string()) })).nullable(),
    workloads: z.array(recordedWorkload),
    policies: z
      .array(
        z.object({
          need: needFact,
          family: z.object({ workloads: count, potential: count }).nullable(),
          clonesMember: z.union([z.string(), z.boolean()]).nullable(),
          rateUsed: byWindow.nullable(),
          losses: byWindow,
        }),
      )
      .nullable(),
  }),
  verdict: z.object({
    decision: z.enum(['allowed', 'denied']),
    policy: nullableString,
    limit: nullableString,
    code: nullableString,
    message: z.string(),
    growth: z.boolean(),
    from: count,
    to: count,
    requested: count,
    admitted: count,
    need: z.number().min(0).nullable(),
    needSource: nullableString,
    allowance: z.number().nullable(),
    measured: z.boolean(),
    fallback: z.boolean(),
    episode: z.enum(['recorded', 'duplicate']).nullable(),
    episodeVerdict: z.enum(['allowed', 'denied', 'clamped']).nullable(),
  }),
});

/** Parses one recording line; throws an Error naming the first field at fault. */
export function parseRecordLine(text: string): ReviewRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const format = typeof parsed === 'object' && parsed !== null ? (parsed as { format?: unknown }).format : undefined;
  if (format !== RECORDING_FORMAT) {
    throw new Error(
      typeof format === 'string'
        ? `unsupported recording format ${JSON.stringify(format)} (this version reads ${RECORDING_FORMAT})`
        : `not a recording line (no "format": "${RECORDING_FORMAT}")`,
    );
  }
  const result = reviewRecordSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new Error(`${issue?.path.join('.') || '(line)'}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data as unknown as ReviewRecord;
}
