import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import type { Policy } from '../core/types.ts';
import { SubjectAccessReviews } from './access-review.ts';
import { type AccessAsker, agentSubjects, auditSubjects, type BypassFinding, listServiceAccounts } from './bypass-audit.ts';
import type { KubeConnection } from './kube-http.ts';

export interface BypassMonitorOptions {
  readonly connection: KubeConnection;
  readonly policies: () => readonly Policy[] | undefined;
  readonly guardNamespace: string;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock: Clock;
  /** How often the agents' permissions are checked (default 5 min); also once at start. */
  readonly intervalMs?: number | undefined;
}

/** A running check of the agents' permissions. */
export interface BypassMonitor {
  /** Checks every agent identity now; resolves with the findings (also when a check could not run: none). */
  runOnce(): Promise<BypassFinding[]>;
  stop(): void;
}

/** An AccessAsker over SubjectAccessReviews with the given credentials (the guard's, or an operator's). */
export function subjectAccessAsker(connection: KubeConnection, clock: Clock, logger?: Logger): AccessAsker {
  const reviews = new SubjectAccessReviews({ connection, clock, logger, ttlMs: 30_000, timeoutMs: 5_000 });
  return (subject, access) => reviews.allowed(subject, access, AbortSignal.timeout(10_000));
}

/**
 * Checks each policy's agent identities with SubjectAccessReviews, at start and every
 * interval: `replica_guard_agent_bypass_permission{agent, permission}` is 1 for a
 * permission that lets the agent get around the guard, 0 otherwise; a finding is logged
 * (with what to remove) when it appears, and again when it is gone.
 */
export function startBypassMonitor(options: BypassMonitorOptions): BypassMonitor {
  const { connection, logger, clock } = options;
  const gauge = new Gauge({
    name: 'replica_guard_agent_bypass_permission',
    help: 'Whether an agent identity holds a permission that gets around the guard (1) or not (0), by agent and permission.',
    labelNames: ['agent', 'permission'],
    registers: [options.registry],
  });
  const lastRun = new Gauge({
    name: 'replica_guard_bypass_check_last_run_timestamp_seconds',
    help: "When the agents' permissions were last checked completely, as a Unix timestamp.",
    registers: [options.registry],
  });
  const ask = subjectAccessAsker(connection, clock, logger);
  let reported = new Map<string, BypassFinding>();
  let running: Promise<BypassFinding[]> | undefined;

  async function check(): Promise<BypassFinding[]> {
    const policies = options.policies();
    if (!policies) return [];
    let findings: BypassFinding[];
    try {
      const { subjects, unchecked } = agentSubjects(policies, await listServiceAccounts(connection));
      for (const u of unchecked) logger.info({ pattern: u }, 'an agent pattern cannot be checked for permissions that get around the guard');
      findings = await auditSubjects(subjects, options.guardNamespace, ask);
    } catch (err) {
      logger.warn({ err }, "could not check the agents' permissions (the guard needs list on serviceaccounts and create on subjectaccessreviews)");
      return [];
    }
    gauge.reset();
    const now = new Map<string, BypassFinding>();
    for (const f of findings) {
      gauge.set({ agent: f.agent, permission: f.permission }, f.found ? 1 : 0);
      if (!f.found) continue;
      const key = `${f.agent}|${f.permission}`;
      now.set(key, f);
      if (reported.get(key)?.grants.join() !== f.grants.join()) {
        logger.warn({ agent: f.agent, permission: f.permission, remove: f.grants, why: f.why }, `agent ${f.agent} can get around the guard (${f.permission}): remove ${f.grants.join('; ')}`);
      }
    }
    for (const [key, f] of reported) {
      if (!now.has(key)) logger.info({ agent: f.agent, permission: f.permission }, `agent ${f.agent} no longer holds ${f.permission}`);
    }
    reported = now;
    lastRun.set(clock.now().getTime() / 1000);
    return findings;
  }

  const runOnce = () => {
    running ??= check().finally(() => {
      running = undefined;
    });
    return running;
  };
  void runOnce();
  const timer = setInterval(() => void runOnce(), options.intervalMs ?? 300_000);
  timer.unref();
  return { runOnce, stop: () => clearInterval(timer) };
}
