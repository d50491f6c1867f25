import { type TaskSnapshot, TaskStatus } from '../upstream/task-snapshot.ts';

export interface EtaEstimatorOptions {
  /** Clock in ms: a reading is timed when the loop accepts it. Default `Date.now`. */
  now?: () => number;
  /** Weight of the newest rate in the exponentially weighted average, 0 to 1. Default 0.5. */
  smoothing?: number;
}

/** One task's completion estimate, fed the states its poll loop accepts. */
export interface EtaEstimator {
  /**
   * Takes a state as it is accepted and returns when the task should end: null
   * until two processing readings with rising progress were seen, and for any
   * state other than processing.
   */
  observe(snapshot: TaskSnapshot): Date | null;
}

/**
 * Estimates when a task ends from the progress rate the gateway observes
 * (progress points per ms between rising readings, exponentially weighted).
 * It only reads what polling already brings: never a reason to poll more.
 */
export function createEtaEstimator(options: EtaEstimatorOptions = {}): EtaEstimator {
  const {
    now = Date.now,
    smoothing = 0.5, // newest rate weighs half
  } = options;
  let last: { at: number; progress: number } | null = null;
  let rate: number | null = null;

  return {
    observe(snapshot) {
      const { progress } = snapshot;
      if (snapshot.status !== TaskStatus.PROCESSING || progress === null) return null;
      const at = now();
      if (last === null || progress < last.progress) last = { at, progress };
      else if (progress > last.progress && at > last.at) {
        const sample = (progress - last.progress) / (at - last.at);
        rate = rate === null ? sample : smoothing * sample + (1 - smoothing) * rate;
        last = { at, progress };
      }
      return rate === null ? null : new Date(last.at + Math.round((100 - last.progress) / rate));
    },
  };
}
