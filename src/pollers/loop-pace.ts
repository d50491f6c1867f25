import type { GatewayError } from '../errors.ts';
import { type BackoffOptions, withJitter } from '../lib/scheduler.ts';
import { RateLimitedError } from '../upstream/errors.ts';

export interface LoopPaceOptions {
  /** First and shortest poll interval, in ms; snapped back to on every change. */
  intervalMs: number;
  /** Longest interval while nothing changes, in ms. */
  maxIntervalMs: number;
  /** Longest back-off after transient faults, in ms. */
  maxBackoffMs: number;
  /** Interval jitter, as a ratio (0.1: ±10 %). */
  jitter: number;
  /** Delay (ms) before retry `attempt` after a transient fault. */
  backoff: (attempt: number, options: BackoffOptions) => number;
  random: () => number;
}

/**
 * How long one poll loop waits between reads: the interval snaps back on a
 * change and stretches while nothing changes; after a transient fault it
 * backs off, or waits as long as a 429 asked.
 */
export interface LoopPace {
  /** The interval now, in ms: a state older than this is stale. */
  intervalMs(): number;
  /** The wait before the next poll, in ms, jittered. */
  next(): number;
  /** Whether the loop backs off after a fault now. */
  backingOff(): boolean;
  /** A state was accepted: news snaps back to the first interval; no news stretches it by half, up to the longest. */
  accepted(changed: boolean): void;
  /** A read was answered: after faults, back to the normal pace at once. */
  answered(): void;
  /** A transient fault: the wait before the retry, in ms (not jittered: the back-off has its own, and Retry-After is a floor). */
  failed(error: GatewayError): number;
}

/** The pace of a new loop: the first interval, no faults. */
export function createLoopPace(options: LoopPaceOptions): LoopPace {
  const { intervalMs, maxIntervalMs, maxBackoffMs, jitter, backoff, random } = options;
  let currentMs = intervalMs;
  let failures = 0;
  return {
    intervalMs: () => currentMs,
    next: () => withJitter(currentMs, jitter, random),
    backingOff: () => failures > 0,
    accepted(changed) {
      currentMs = changed ? intervalMs : Math.min(maxIntervalMs, Math.round(currentMs * 1.5));
    },
    answered() {
      if (failures === 0) return;
      failures = 0;
      currentMs = intervalMs;
    },
    failed(error) {
      failures += 1;
      return error instanceof RateLimitedError && error.retryAfterMs !== null
        ? Math.max(error.retryAfterMs, intervalMs)
        : backoff(failures, { baseMs: intervalMs, maxMs: maxBackoffMs, random });
    },
  };
}
