import { z } from 'zod';

const durationPattern = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration written as `500ms`, `30s`, `5m` or `1h`, read into milliseconds. */
export const durationMs = z
  .string()
  .regex(durationPattern, { error: 'a duration such as 500ms, 30s, 5m or 1h' })
  .transform((s) => {
    const m = durationPattern.exec(s);
    return Number(m?.[1]) * (UNIT_MS[m?.[2] ?? ''] ?? 0);
  });
