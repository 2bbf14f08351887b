import { z } from 'zod';

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  k: 1000,
  M: 1000 ** 2,
  G: 1000 ** 3,
  T: 1000 ** 4,
};
const pattern = /^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;

/** A size in bytes, as a number or a Kubernetes-style quantity (`64Mi`, `1Gi`, `500k`). */
export const byteSize = z.union([
  z.number().int().min(1),
  z
    .string()
    .regex(pattern, { error: 'a size such as 1048576, 64Mi or 1Gi' })
    .transform((s) => {
      const m = pattern.exec(s);
      return Number(m?.[1]) * (UNITS[m?.[2] ?? ''] ?? 1);
    }),
]);
