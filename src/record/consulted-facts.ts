import type { DecisionFacts } from '../admission/decide.ts';
import type { FamilyFact, NeedFact } from '../core/types.ts';

/**
 * One policy's facts as a recording keeps them: the need from its load source, the
 * family totals, whether a new workload cloned a member, and the instances the family
 * added and lost within windows (those the policy asked for, and a few standard ones so
 * that a replay under other windows finds them).
 */
export interface RecordedPolicyFacts {
  readonly need: NeedFact;
  /** Null when the family was unknown. */
  readonly family: FamilyFact | null;
  /**
   * The member a new workload cloned (`Kind namespace/name`), false when it cloned none,
   * null when the question did not arise (not a CREATE with pods).
   */
  readonly clonesMember: string | boolean | null;
  /** Instances added by window length in milliseconds; null when the ledger could not tell. */
  readonly rateUsed: Readonly<Record<string, number>> | null;
  /** Instances lost by window length in milliseconds. */
  readonly losses: Readonly<Record<string, number>>;
}

/** Windows recorded whatever the policies ask: 1m, 5m, 10m, 15m, 30m, 1h. */
export const STANDARD_WINDOWS_MS: readonly number[] = [60_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000];

/**
 * Wraps the facts the webhook gathered so that what the decision asks is kept. Call
 * `recorded()` right after the decision, while the state the facts read is unchanged.
 */
export function consulting(
  facts: DecisionFacts,
  asksClone: boolean,
): { readonly facts: DecisionFacts; recorded(): RecordedPolicyFacts } {
  let clone: { readonly member: string | undefined } | undefined;
  const clonedMember = () => (clone ??= { member: facts.clonedMember() }).member;
  const rate = facts.rateUsed;
  const rates: Record<string, number> = {};
  const losses: Record<string, number> = {};
  const remember = (into: Record<string, number>, read: (windowMs: number) => number) => (windowMs: number) =>
    (into[String(windowMs)] ??= read(windowMs));
  const rateUsed = rate === undefined ? undefined : remember(rates, rate);
  const lossesWithin = remember(losses, facts.lossesWithin);
  return {
    facts: { ...facts, clonedMember, rateUsed, lossesWithin },
    recorded() {
      for (const w of STANDARD_WINDOWS_MS) {
        rateUsed?.(w);
        lossesWithin(w);
      }
      return {
        need: facts.need,
        family: facts.family === undefined ? null : { workloads: facts.family.workloads, potential: facts.family.potential },
        clonesMember: asksClone ? (clonedMember() ?? false) : null,
        rateUsed: rateUsed === undefined ? null : sortedByWindow(rates),
        losses: sortedByWindow(losses),
      };
    },
  };
}

function sortedByWindow(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).sort(([a], [b]) => Number(a) - Number(b)));
}

/**
 * Recorded facts as a decision consults them. A window that was not recorded reads the
 * nearest recorded one: the shortest longer window (at least as many instances), else the
 * longest shorter one.
 */
export function factsFromRecord(recorded: RecordedPolicyFacts): DecisionFacts {
  const rate = recorded.rateUsed;
  return {
    need: recorded.need,
    family: recorded.family ?? undefined,
    // `true` is what a recording without the member's name says.
    clonedMember: () =>
      typeof recorded.clonesMember === 'string' ? recorded.clonesMember : recorded.clonesMember === true ? 'a member of the family' : undefined,
    rateUsed: rate === null ? undefined : (w) => nearestWindow(rate, w),
    lossesWithin: (w) => nearestWindow(recorded.losses, w),
  };
}

/** The value recorded for a window, or for the nearest one (see {@link factsFromRecord}); 0 when none. */
export function nearestWindow(values: Readonly<Record<string, number>>, windowMs: number): number {
  const exact = values[String(windowMs)];
  if (exact !== undefined) return exact;
  let longer: [number, number] | undefined;
  let shorter: [number, number] | undefined;
  for (const [key, value] of Object.entries(values)) {
    const w = Number(key);
    if (w > windowMs && (longer === undefined || w < longer[0])) longer = [w, value];
    if (w < windowMs && (shorter === undefined || w > shorter[0])) shorter = [w, value];
  }
  return (longer ?? shorter)?.[1] ?? 0;
}
