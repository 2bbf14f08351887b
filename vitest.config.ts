import { defineConfig } from 'vitest/config';

// Two projects: `unit` (the code alone, fake servers, real Prometheus and TLS) and
// `cluster` (a real kube-apiserver with etcd, and the real helm, built by
// test/setup/ensure-cluster-tools.ts). `vitest run --project cluster` runs one tier.
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['test/cluster/**'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          // After the unit project, never beside it; each file starts its own API server and
          // etcd, and two at once is what two cores carry.
          sequence: { groupOrder: 1 },
          maxWorkers: 2,
          testTimeout: 60_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
