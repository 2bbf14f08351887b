import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { SwitchStore } from '../cluster/switch-store.ts';
import type { SwitchWatcher } from '../cluster/switch-watcher.ts';
import { type AnnotatedObject, copyFreeze, forgetCopied } from '../cluster/freeze-copy.ts';
import { type ApplicableSwitches, applicableSwitches, freezeKey } from '../core/switches.ts';
import type { AgentIdentity, WorkloadRef } from '../core/types.ts';
import type { SwitchMetrics } from '../telemetry/switch-metrics.ts';
import { allowed, type Decision, denied, withAuditAnnotations, withWarnings } from './decision.ts';
import { FREEZE_ANNOTATION, freezeAnnotationChange, isSwitchResource, reservedChangesOf } from './freeze-annotations.ts';
import type { AdmissionRequest } from './review.ts';
import type { Webhook } from './verdict.ts';

/** What the review handler asks of the safety switches. */
export interface SwitchGate {
  /** Where the switches live, for messages. */
  readonly where: string;
  /** The switches that apply to an agent's request on a workload now. */
  applicable(agent: AgentIdentity, ref: WorkloadRef): ApplicableSwitches;
  /** Counts a request whose outcome a switch set. */
  counted(switchName: 'freeze' | 'break-glass' | 'exemption', verdict: string): void;
  /** Whether this request writes an object the switches watch (a ServiceAccount, a Namespace). */
  handles(req: AdmissionRequest): boolean;
  /** Decides such a request: an agent may not touch the freeze annotations; an operator's freeze is copied into the switches. */
  review(webhook: Webhook, req: AdmissionRequest, agent: AgentIdentity | undefined): Promise<Decision>;
}

export interface SafetySwitchesDeps {
  readonly watcher: Pick<SwitchWatcher, 'current' | 'adopt'>;
  readonly store: SwitchStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: SwitchMetrics | undefined;
}

/** The switch gate over a watcher (what applies) and a store (where an operator's annotation is copied). */
export function createSwitchGate(deps: SafetySwitchesDeps): SwitchGate {
  const { watcher, store, clock, logger, metrics } = deps;

  async function copyFromRequest(req: AdmissionRequest, value: string): Promise<Decision> {
    const object = annotatedObjectOf(req);
    let copied: Awaited<ReturnType<typeof copyFreeze>>;
    try {
      copied = await copyFreeze(store, object, value, req.userInfo.username, clock.now());
      watcher.adopt(copied.data);
    } catch (err) {
      logger.error({ err, uid: req.uid, object }, 'could not copy a freeze annotation into the safety switches');
      return withWarnings(allowed(), [
        `replica-guard could not record the freeze in ${store.where}: growth is NOT frozen yet; run replica-guard freeze or retry the annotation`,
      ]);
    }
    if (copied.copied) {
      logger.info({ audit: { switch: copied.key, action: 'set', by: req.userInfo.username, source: 'annotation', uid: req.uid } }, 'freeze annotation copied into the safety switches');
    }
    return withAuditAnnotations(withWarnings(allowed(), [`replica-guard froze growth: switch ${copied.key} set in ${store.where}`]), { switch: copied.key });
  }

  return {
    where: store.where,
    applicable: (agent, ref) => applicableSwitches(watcher.current(), agent, ref, clock.now().getTime()),
    counted: (switchName, verdict) => metrics?.decisions.inc({ switch: switchName, verdict }),
    handles: isSwitchResource,
    async review(webhook, req, agent) {
      if (agent !== undefined) {
        const changed = reservedChangesOf(req);
        if (changed.length === 0) return allowed();
        const keys = changed.map((k) => `"${k}"`).join(', ');
        logger.warn({ audit: { uid: req.uid, webhook, agent: agent.username, operation: req.operation, kind: req.kind.kind, namespace: req.namespace, name: req.name, verdict: 'denied', limit: 'reservedAnnotations', annotations: changed } }, 'agent tried to change a replica-guard annotation');
        return withAuditAnnotations(
          denied(`replica-guard denied this change to ${req.kind.kind} ${req.name}: agents may not set, change or remove ${keys}; only an operator can (replica-guard freeze / unfreeze)`, [
            { reason: 'reservedAnnotations', message: `agents may not write ${keys}`, field: 'metadata.annotations' },
          ]),
          { verdict: 'denied', limit: 'reservedAnnotations' },
        );
      }
      if (webhook !== 'validate' || req.dryRun) return allowed();
      const change = freezeAnnotationChange(req);
      if (change.type === 'set') return copyFromRequest(req, change.value);
      if (change.type === 'removed') {
        await forgetCopied(store, annotatedObjectOf(req)).catch((err: unknown) => logger.warn({ err, uid: req.uid }, 'could not forget a copied freeze annotation'));
        return withWarnings(allowed(), [
          `removing ${FREEZE_ANNOTATION} does not unfreeze: the switch ${freezeKey(change.scope)} in ${store.where} stays until replica-guard unfreeze removes it`,
        ]);
      }
      return allowed();
    },
  };
}

function annotatedObjectOf(req: AdmissionRequest): AnnotatedObject {
  const meta = (typeof req.object === 'object' && req.object !== null ? (req.object as { metadata?: { uid?: unknown } }).metadata : undefined) ?? {};
  const uid = typeof meta.uid === 'string' ? meta.uid : undefined;
  return req.resource.resource === 'namespaces'
    ? { kind: 'Namespace', name: req.name, uid }
    : { kind: 'ServiceAccount', namespace: req.namespace, name: req.name, uid };
}
