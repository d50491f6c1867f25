/**
 * Time, injected: pollers take a clock, a scheduler and a random source, so
 * tests drive them without real sleeps or global fake timers.
 */
export interface Scheduler {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real one: Node's timers. */
export const realScheduler: Scheduler = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Node's longest timer (2^31 - 1 ms, about 24.8 days); a longer delay fires after 1 ms. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * Node's timers, each fired on the first multiple of `tickMs` (of `performance.now()`) at or after its
 * delay: the timers due within one tick fire together, on one wake-up of the process, instead of each
 * on its own. On 20 ms ticks a gateway spent a sixth to a half less CPU per poll (`npm run bench --
 * performance polls`, `-- tracing polls`). Never earlier than Node's own timer; at most one tick later.
 * A tick of 1 ms or less is Node's timers as they are.
 */
export function tickScheduler(tickMs: number): Scheduler {
  if (!(tickMs > 1)) return realScheduler;
  return {
    setTimeout: (callback, delayMs) => {
      const now = performance.now();
      // Not past the longest delay Node takes: beyond it, it would fire at once.
      return setTimeout(callback, Math.min(Math.ceil((now + delayMs) / tickMs) * tickMs - now, LONGEST_TIMER_MS));
    },
    clearTimeout: realScheduler.clearTimeout,
  };
}

/**
 * The tick the poll loops' timers fire on: 1 % of the poll interval, at most 20 ms (the default
 * interval's). A loop polls at most that much later than its interval and jitter ask; the jitter
 * (±10 %) still spreads loops started together over many ticks.
 */
export function pollTickMs(pollIntervalMs: number): number {
  return Math.min(20, Math.floor(pollIntervalMs / 100));
}

export interface BackoffOptions {
  /** The first delay, in ms. */
  baseMs: number;
  /** The longest delay, in ms. */
  maxMs: number;
  /** A number in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (1 for the first): `baseMs * 2^(attempt-1)`,
 * capped at `maxMs`, then "equal jitter" (half fixed, half random) so that many
 * loops failing together do not retry in step.
 */
export function exponentialBackoffWithJitter(attempt: number, options: BackoffOptions): number {
  const { baseMs, maxMs, random = Math.random } = options;
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + random() * (ceiling / 2);
}

/** Spreads `delayMs` by up to `±ratio` so that loops started together drift apart. */
export function withJitter(delayMs: number, ratio: number, random: () => number = Math.random): number {
  return Math.max(0, delayMs * (1 + (random() * 2 - 1) * ratio));
}
