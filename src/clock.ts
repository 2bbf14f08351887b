/** Time, passed in so that tests and replays control it. */
export interface Clock {
  /** Wall-clock time, for records and logs. */
  now(): Date;
  /** A monotonic reading in milliseconds, for durations and deadlines. */
  monotonicMs(): number;
}

/** The process's real clock. */
export const systemClock: Clock = {
  now: () => new Date(),
  monotonicMs: () => performance.now(),
};
