import type { DecisionEvent, InvolvedObject } from '../cluster/event-recorder.ts';
import type { AgentIdentity } from '../core/types.ts';
import type { Decision } from './decision.ts';
import type { AdmissionRequest } from './review.ts';
import type { Webhook } from './verdict.ts';
import { builtInKind } from './workload-kinds.ts';

/**
 * The Event a decision deserves, if any: a denial by the validating webhook or a clamp by
 * the mutating one, never for a dry run. It is about the object written (a Scale's parent
 * workload); for a denied CREATE, which leaves no object, about the agent's ServiceAccount
 * (none for an agent that is not a service account).
 */
export function decisionEvent(webhook: Webhook, req: AdmissionRequest, agent: AgentIdentity, decision: Decision): DecisionEvent | undefined {
  if (req.dryRun) return undefined;
  const denied = webhook === 'validate' && decision.kind === 'denied';
  const clamped = webhook === 'mutate' && decision.kind === 'patched';
  if (!denied && !clamped) return undefined;
  const object = involvedObject(req, agent, denied);
  if (object === undefined) return undefined;
  const message = decision.kind === 'denied' ? `${agent.username}: ${decision.message}` : `${agent.username}: ${decision.warnings[0] ?? 'clamped'}`;
  return { agent: agent.username, object, reason: denied ? 'GrowthDenied' : 'GrowthClamped', message };
}

function involvedObject(req: AdmissionRequest, agent: AgentIdentity, denied: boolean): InvolvedObject | undefined {
  // A denied CREATE leaves nothing to attach to, nor does a clamped one without a name yet (generateName).
  if (req.operation === 'CREATE' && req.subResource === '' && (denied || req.name === '')) {
    const sa = agent.serviceAccount;
    if (sa === undefined) return undefined;
    return { apiVersion: 'v1', kind: 'ServiceAccount', namespace: sa.namespace, name: sa.name };
  }
  const uid = uidOf(req.object) ?? uidOf(req.oldObject);
  if (req.subResource === 'scale') {
    const parent = builtInKind(req.resource.group, req.resource.resource);
    const apiVersion = req.resource.group ? `${req.resource.group}/${req.resource.version}` : req.resource.version;
    return { apiVersion, kind: parent?.kind ?? req.resource.resource, namespace: req.namespace, name: req.name, uid };
  }
  const apiVersion = req.kind.group ? `${req.kind.group}/${req.kind.version}` : req.kind.version;
  return { apiVersion, kind: req.kind.kind, namespace: req.namespace, name: req.name, uid };
}

function uidOf(o: unknown): string | undefined {
  if (typeof o !== 'object' || o === null) return undefined;
  const uid = (o as { metadata?: { uid?: unknown } }).metadata?.uid;
  return typeof uid === 'string' ? uid : undefined;
}
