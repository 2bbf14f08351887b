/**
 * The policy both benchmarks of the review path run with: enforce for every service
 * account of `agents`, allowance = min(need 3 + headroom 1, perWorkload 10) = 4. No family
 * limits, so that allowed creates keep being allowed however many there are.
 */
export const BENCH_POLICY = [
  'apiVersion: replica-guard.io/v1alpha1',
  'kind: ReplicaPolicy',
  'metadata:',
  '  name: bench-agents',
  'spec:',
  '  mode: enforce',
  '  agents:',
  '    serviceAccounts: ["agents:*"]',
  '  need:',
  '    static: 3',
  '  limits:',
  '    headroom: 1',
  '    perWorkload: 10',
  '',
].join('\n');
