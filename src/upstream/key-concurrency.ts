/**
 * How many short requests one key may have in flight. Two rules, the lower wins:
 *  - what its pace needs, by Little's law (in flight = rate × latency, at the latency
 *    without load), with `LIMIT_HEADROOM` and `MIN_LIMIT` on top;
 *  - a latency rising under load lowers the limit (the gradient of Netflix's
 *    concurrency-limits and Envoy's adaptive concurrency): when the latency of the
 *    last window passes `LATENCY_TOLERANCE` × the latency without load (plus
 *    `LATENCY_SLACK_MS`), the limit shrinks by their ratio, smoothed; it grows back
 *    (doubling at most per window) once the latency is back.
 * Long-held requests (a submit with `waitSeconds`) are never sampled: their latency
 * is the caller's wait, not the upstream's.
 */
export interface KeyConcurrency {
  /** One short request of the key was answered after `latencyMs`. */
  sample(latencyMs: number): void;
  /** Closes a window of samples; returns the limit for a pace of `ratePerSec`. Called every `LIMIT_WINDOW_MS` or so. */
  update(ratePerSec: number): number;
  /** The limit set by the last update. */
  readonly limit: number;
  /** Average latency of recent windows, ms; 0 before the first answer. */
  readonly latencyMs: number;
}

/** Before the first answer (latency unknown): the fixed bound of earlier versions. */
export const INITIAL_LIMIT = 8;
/**
 * Never below this (the fixed bound of earlier versions): a fast upstream's latency is mostly this
 * process's own, and polls fall due in bursts that a limit of a few would queue.
 */
export const MIN_LIMIT = 8;
/** Room over Little's law, for latency jitter and bursts of the pace. */
export const LIMIT_HEADROOM = 2;
/** A latency up to this many times the latency without load (plus the slack) is not a slowdown. */
export const LATENCY_TOLERANCE = 1.5;
/** Added to the tolerated latency, ms: this process's own event-loop delays are not the upstream's. */
export const LATENCY_SLACK_MS = 20;
/** How often the scheduler closes a window and updates a busy key's limit, ms. */
export const LIMIT_WINDOW_MS = 100;
/** One window lowers the limit by at most this share of the latency's excess (Gradient2's smoothing). */
const SMOOTHING = 0.2;
/** The ratio applied to the limit is never below this. */
const MIN_GRADIENT = 0.5;
/** Weight of the latest window in the average latency. */
const WINDOW_WEIGHT = 0.5;
/** Share by which the latency without load follows a higher average, per window (it follows a lower one at once). */
const BASELINE_DRIFT = 0.01;

/** The in-flight limit of one key. */
export function createKeyConcurrency(): KeyConcurrency {
  let sum = 0;
  let count = 0;
  let latency = 0;
  /** The latency without load: the lowest average, drifting up slowly so that a lasting change is accepted. */
  let baseline = 0;
  let limit = INITIAL_LIMIT;
  return {
    sample(latencyMs) {
      sum += latencyMs;
      count += 1;
    },
    update(ratePerSec) {
      if (count > 0) {
        const window = sum / count;
        latency = latency === 0 ? window : latency + (window - latency) * WINDOW_WEIGHT;
        baseline = baseline === 0 || latency < baseline ? latency : baseline + (latency - baseline) * BASELINE_DRIFT;
        sum = 0;
        count = 0;
      }
      if (latency === 0) return limit;
      // Little's law at the latency without load: a latency that rises under load never raises the limit.
      const needed = Math.ceil((ratePerSec * baseline * LIMIT_HEADROOM) / 1_000) + MIN_LIMIT;
      const gradient = Math.max(MIN_GRADIENT, Math.min(1, (LATENCY_TOLERANCE * baseline + LATENCY_SLACK_MS) / latency));
      const next = gradient < 1 ? limit * (1 - SMOOTHING * (1 - gradient)) : Math.max(limit * 2, MIN_LIMIT);
      limit = Math.max(MIN_LIMIT, Math.min(needed, next));
      return Math.floor(limit);
    },
    get limit() {
      return Math.floor(limit);
    },
    get latencyMs() {
      return latency;
    },
  };
}
