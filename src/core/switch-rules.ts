import type { Judgement } from './judge.ts';
import type { Resolution } from './resolve.ts';
import { type ApplicableSwitches, describeFreeze } from './switches.ts';
import type { Policy } from './types.ts';

/**
 * The policies as the switches make them: under break-glass or an exemption every policy
 * judges in audit mode (the request is allowed and what would have been denied is a
 * warning and a record). A freeze is applied after judging, by {@link resolveUnderFreeze}.
 */
export function policiesUnderSwitches(policies: readonly Policy[], applicable: ApplicableSwitches): readonly Policy[] {
  if (applicable.breakGlass === undefined && applicable.exemption === undefined) return policies;
  return policies.map((p) => (p.mode === 'audit' ? p : { ...p, mode: 'audit' }));
}

/**
 * A freeze denies every growth, whatever the policies allowed, and beats break-glass and
 * exemptions (the operator who froze an agent wants it stopped). Scale-downs, deletions
 * and changes that add nothing are not growth and keep the policies' resolution.
 * `where` names the switch's source for the message (`ConfigMap replica-guard/replica-guard-switches`).
 */
export function resolveUnderFreeze(
  resolution: Resolution,
  judgements: readonly Judgement[],
  applicable: ApplicableSwitches,
  where: string,
): Resolution {
  const freeze = applicable.freeze;
  if (freeze === undefined) return resolution;
  const growth = judgements.find((j) => j.growth);
  if (growth === undefined) return resolution;
  const set = [freeze.entry.by ? `set by ${freeze.entry.by}` : '', freeze.entry.at ? `at ${freeze.entry.at}` : '']
    .filter(Boolean)
    .join(' ');
  const reason = freeze.entry.reason ? `, reason: ${freeze.entry.reason}` : '';
  return {
    type: 'deny',
    judgement: growth,
    violations: [
      {
        limit: 'freeze',
        message:
          `growth of ${describeFreeze(freeze.key)} is frozen by switch ${freeze.key} in ${where}` +
          `${set ? ` (${set}${reason})` : reason ? ` (${reason.slice(2)})` : ''}; ` +
          'scaling down and deleting stay allowed; only an operator can lift it (replica-guard unfreeze)',
      },
    ],
    warnings: resolution.warnings,
  };
}
