import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { systemClock } from '../../src/clock.ts';
import { configSchema } from '../../src/config.ts';
import { type AssembledGuard, assembleGuard } from '../../src/guard.ts';

/** A policy that lets agent growth through (perWorkload 100), so that only a switch denies it. */
export const ROOMY_POLICY = `apiVersion: replica-guard.io/v1alpha1
kind: ReplicaPolicy
metadata: { name: roomy }
spec:
  mode: enforce
  agents: { serviceAccounts: ["agents:*"] }
  need: { onUnavailable: caps }
  limits: { perWorkload: 100 }
`;

/**
 * Guard replicas wired for the cluster at `server` (assembleGuard with a connection), one
 * per instance name, sharing `dir` for the policy and the certificates; resolves once all
 * are ready.
 */
export async function startClusterGuards(server: string, dir: string, instances: readonly string[], config: Record<string, unknown> = {}): Promise<AssembledGuard[]> {
  await writeFile(join(dir, 'policy.yaml'), ROOMY_POLICY);
  const parsed = configSchema.parse({
    policies: { dir },
    tls: { dir: join(dir, 'certs') },
    view: { bookmarkInterval: '100ms', stallFactor: 5, requestTimeout: '2s' },
    logLevel: 'silent',
    ...config,
  });
  const guards: AssembledGuard[] = [];
  for (const instance of instances) {
    guards.push(await assembleGuard(parsed, { logger: pino({ level: 'silent' }), clock: systemClock, cluster: { baseUrl: server }, instance }));
  }
  const deadline = Date.now() + 10_000;
  while (!guards.every((g) => g.readiness().ready)) {
    if (Date.now() > deadline) throw new Error(`guards not ready: ${JSON.stringify(guards.map((g) => g.readiness()))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return guards;
}
