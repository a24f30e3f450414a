/**
 * Time as edgekit sees it. Every timer and timestamp in the core and the memory transport goes through a Clock,
 * so tests can control TTLs, timeouts and backoff with a manual clock (see `edgekit/testing`).
 */

/** A cancellable timer handle. */
export interface ClockTimer {
  cancel(): void;
}

/** Source of time and timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds. The timer never keeps the process alive. */
  setTimer(fn: () => void, ms: number): ClockTimer;
}

/** The real clock: `Date.now()` and unref'd Node timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Resolves after `ms` on `clock`, or rejects with the signal's reason. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      timer.cancel();
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Keeps the Node.js process alive until the returned function is called: a client that is open or reconnecting holds
 * one, so a module process never exits because its socket is gone for a moment (a backoff timer alone does not hold
 * the event loop). A ref'd interval that does no work; idempotent release. Where timers have no notion of keeping a
 * process alive (browsers), it costs one idle interval.
 */
export function keepProcessAlive(): () => void {
  // The longest delay Node accepts; the callback never does anything.
  let interval: ReturnType<typeof setInterval> | undefined = setInterval(() => undefined, 2_147_483_647);
  return () => {
    if (interval === undefined) return;
    clearInterval(interval);
    interval = undefined;
  };
}
