/** What a drain does to the running guard; main.ts passes the real servers, tests their own. */
export interface Drainable {
  /** Report not ready from now on, and ask clients to reconnect (elsewhere) after each answer. */
  beginDrain(): void;
  /** Stop accepting connections and resolve once the requests in flight are answered. */
  close(): Promise<void>;
  /** Cut the connections still open (requests that outlived the in-flight timeout). */
  forceClose(): void;
}

/** The timings of a drain, in milliseconds. */
export interface DrainTimings {
  /** How long the guard keeps serving while not ready: the Service and the API server need it to stop sending. */
  readonly periodMs: number;
  /** How long the requests in flight may take to finish once the servers close. */
  readonly inFlightTimeoutMs: number;
}

/** The steps of a drain, for the log. */
export type DrainStep = 'draining' | 'closing' | 'closed' | 'forced';

/**
 * Drains: not ready at once, serving on for `periodMs` (or until `cutShort` resolves: a
 * second signal), then closes and waits for the requests in flight, cutting them off
 * after `inFlightTimeoutMs`. Resolves when the guard has stopped serving.
 */
export async function drain(
  target: Drainable,
  timings: DrainTimings,
  options: { readonly onStep?: (step: DrainStep) => void; readonly cutShort?: Promise<void> } = {},
): Promise<void> {
  const step = options.onStep ?? (() => undefined);
  target.beginDrain();
  step('draining');
  await raceTimer(timings.periodMs, options.cutShort ?? new Promise<void>(() => undefined));
  step('closing');
  let done = false;
  const closed = target.close().then(() => {
    done = true;
  });
  await raceTimer(timings.inFlightTimeoutMs, closed);
  if (!done) {
    step('forced');
    target.forceClose();
    await closed;
  }
  step('closed');
}

/** Resolves when `ms` have passed or `other` resolves, whichever is first; the timer never outlives it. */
async function raceTimer(ms: number, other: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))), other]);
  } finally {
    clearTimeout(timer);
  }
}
