import { hash } from 'node:crypto';
import type { Violation } from './judge.ts';
import type { JustificationFact, Policy, WorkloadChange } from './types.ts';

/** The annotation an agent writes its reasoning into. */
export const JUSTIFICATION_KEY = 'replica-guard.io/justification';

/** What the ledger keeps of a justification: a short hash, never the text (the audit log has that). */
export function justificationHash(text: string): string {
  return hash('sha256', text.trim(), 'hex').slice(0, 24);
}

/**
 * Whether a growth's justification is fresh: changed in this request, or different from
 * the one the family's last recorded growth carried (`lastHash`; undefined: none yet).
 * A blank text is no justification.
 */
export function justificationFact(change: WorkloadChange, lastHash: string | undefined): JustificationFact | undefined {
  const j = change.justification;
  if (j === undefined) return undefined;
  const text = j.text?.trim() ? j.text : undefined;
  const fresh = text !== undefined && (j.changed || lastHash === undefined || justificationHash(text) !== lastHash);
  return { text, fresh, from: j.from };
}

/**
 * The violation of a policy that requires a fresh justification for this growth, if any:
 * `always` for every growth, `beyondNeed` for growth past the need (or when the need is
 * not known, since then nothing shows the growth is needed). The message says what to add.
 */
export function justificationViolation(
  policy: Policy,
  change: WorkloadChange,
  growth: { readonly to: number; readonly needUsed: number | null },
  fact: JustificationFact | undefined,
): Violation | undefined {
  const required = policy.justification?.required;
  if (required === undefined || fact?.fresh === true) return undefined;
  if (required === 'beyondNeed' && growth.needUsed !== null && growth.to <= growth.needUsed) return undefined;
  const why = required === 'always' ? 'every growth' : growth.needUsed === null ? 'growth while the need is unknown' : `growth beyond the need (${growth.needUsed})`;
  const where = fact?.from === 'parent' ? `on the ${change.ref.kind} ${change.ref.name} (a Scale is judged by its parent's annotation), then scale again` : `in this ${change.ref.kind}'s metadata.annotations`;
  const state = fact?.text === undefined ? 'none is set' : 'the one set was already given for the last recorded growth';
  return {
    limit: 'justification',
    field: `metadata.annotations[${JUSTIFICATION_KEY}]`,
    message: `policy ${policy.name} requires a fresh ${JUSTIFICATION_KEY} annotation for ${why}, and ${state}; add ${JSON.stringify(JUSTIFICATION_KEY)}: "<why ${growth.to} instances are needed now>" ${where}`,
  };
}
