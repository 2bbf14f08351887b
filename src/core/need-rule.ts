/** The HorizontalPodAutoscaler's default tolerance: a ratio within 10% of 1 keeps the count. */
export const DEFAULT_TOLERANCE = 0.1;

/** What the need rule is given. */
export interface NeedRuleInput {
  /** The workload's steady count now (0 on CREATE). */
  readonly current: number;
  /**
   * Usage over target per instance, for the workload as it runs now: for a total load L
   * and a target per instance t, L / (current × t). Undefined when there is no series.
   */
  readonly ratio: number | undefined;
  /** For a total load: the load over the target per instance, L / t (the count at ratio 1). */
  readonly instancesAtTarget?: number | undefined;
  readonly min?: number | undefined;
  readonly max?: number | undefined;
  readonly tolerance?: number | undefined;
}

/**
 * The need by the HorizontalPodAutoscaler's rule (DESIGN.md "need"): the current count
 * while the ratio is within the tolerance of 1, otherwise ceil(current × ratio) (which is
 * ceil(L / t) for a total load); `min` when the count is 0 or there is no series yet
 * (1 when the policy sets no `min`: a running workload needs at least one instance);
 * never above `max`.
 */
export function needByHpaRule(input: NeedRuleInput): number {
  const min = input.min ?? 1;
  const tolerance = input.tolerance ?? DEFAULT_TOLERANCE;
  let need: number;
  if (input.current === 0 || input.ratio === undefined || !Number.isFinite(input.ratio)) {
    need = min;
  } else if (Math.abs(input.ratio - 1) <= tolerance) {
    need = input.current;
  } else {
    const exact = input.instancesAtTarget ?? input.current * input.ratio;
    // Guard against 2.0000000004 becoming 3 through floating point.
    need = Math.ceil(exact - 1e-9);
  }
  need = Math.max(need, min);
  if (input.max !== undefined) need = Math.min(need, input.max);
  return need;
}
