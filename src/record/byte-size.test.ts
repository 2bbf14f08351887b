import { describe, expect, it } from 'vitest';
import { configSchema } from '../config.ts';

describe('record configuration', () => {
  it('is off by default, with bounds on files, age and total', () => {
    expect(configSchema.parse({}).record).toEqual({
      maxFileSize: 64 * 1024 ** 2,
      maxFileAge: 3_600_000,
      maxTotalSize: 1024 ** 3,
      queueLength: 10_000,
    });
  });

  it('reads sizes as bytes or Kubernetes-style quantities', () => {
    const r = configSchema.parse({ record: { dir: 'rec', maxFileSize: '8Mi', maxTotalSize: 5000, maxFileAge: '10m' } }).record;
    expect(r).toMatchObject({ dir: 'rec', maxFileSize: 8 * 1024 ** 2, maxTotalSize: 5000, maxFileAge: 600_000 });
    expect(configSchema.parse({ record: { maxTotalSize: '2G' } }).record.maxTotalSize).toBe(2e9);
  });

  it('refuses a size it cannot read', () => {
    const r = configSchema.safeParse({ record: { maxFileSize: '8 MB' } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['record', 'maxFileSize']);
  });
});
