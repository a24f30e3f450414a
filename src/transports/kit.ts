/**
 * Pieces every transport shares, so that they accept and refuse the same things: the contract's argument checks
 * live here once instead of in each broker binding.
 */
import type { TransportCloseOptions } from '../transport.js';

/**
 * The time a graceful `close` may wait for the broker: the caller's `timeoutInMs`, capped at `maxMs` (the
 * transport's default). Throws TypeError/RangeError for bad options.
 */
export function closeTimeout(options: TransportCloseOptions | undefined, maxMs: number): number {
  if (options === undefined) return maxMs;
  if (typeof options !== 'object' || options === null) throw new TypeError('close: options must be an object');
  const timeout = options.timeoutInMs;
  if (timeout === undefined) return maxMs;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) {
    throw new RangeError(`close: timeoutInMs must be a non-negative number of milliseconds, got ${String(timeout)}`);
  }
  return Math.min(timeout, maxMs);
}
