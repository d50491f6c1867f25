import type { GatewayError } from '../errors.ts';
import { isTerminal, type TaskSnapshot } from '../upstream/task-snapshot.ts';
import { createEtaEstimator } from './eta.ts';
import { differs, isBackwards } from './task-changes.ts';
import type { TaskSink } from './task-sink.ts';

export interface LoopWatchersOptions {
  /** Clock in ms: when each state is accepted, and the estimate's. */
  now: () => number;
  /** Told how many watchers each new state was handed to. */
  onFanOut?: (subscribers: number) => void;
}

/**
 * The watchers of one poll loop and the last state they were handed: which
 * state is news (a change, never a step back), its completion estimate, and
 * who gets it.
 */
export interface LoopWatchers {
  /** The last state accepted, with its estimate; null before the first. */
  latest(): TaskSnapshot | null;
  /** When the last state was accepted, in ms; 0 before the first. */
  latestAt(): number;
  /** Whether a watcher still waits for its first state. */
  waiting(): boolean;
  /** Adds a watcher and hands it `current` at once; with null it waits for the next state accepted. */
  add(sink: TaskSink, current: TaskSnapshot | null): void;
  /** Removes a watcher; answers how many are left. */
  remove(sink: TaskSink): number;
  /** Takes a state found by any process, hands it on if it is news (and to those still waiting); answers whether it was news. */
  accept(snapshot: TaskSnapshot): boolean;
  /** Ends every watcher with `error`. */
  end(error: GatewayError): void;
  /** Completes every watcher with no further event. */
  complete(): void;
  /** Forgets every watcher. */
  clear(): void;
  /** Watchers now. */
  count(): number;
}

/** The watchers of a new loop: none yet, and no state. */
export function createLoopWatchers(options: LoopWatchersOptions): LoopWatchers {
  const { now, onFanOut } = options;
  const sinks = new Set<TaskSink>();
  /** Watchers that have not received their first state yet. */
  const unprimed = new Set<TaskSink>();
  /** The completion estimate, fed each change accepted. */
  const eta = createEtaEstimator({ now });
  let latest: TaskSnapshot | null = null;
  let latestAt = 0;

  return {
    latest: () => latest,
    latestAt: () => latestAt,
    waiting: () => unprimed.size > 0,
    add(sink, current) {
      sinks.add(sink);
      if (current) sink.push(current, false);
      else unprimed.add(sink);
    },
    remove(sink) {
      sinks.delete(sink);
      unprimed.delete(sink);
      return sinks.size;
    },
    accept(snapshot) {
      const previous = latest;
      latestAt = now();
      const changed = previous === null || (!isBackwards(previous, snapshot) && differs(previous, snapshot));
      // The estimate is this process's own (each replica times the changes it receives), so it is added here, never shared.
      if (changed) latest = withEta(snapshot, eta.observe(snapshot));
      const current = latest!;
      const final = isTerminal(current.status);
      let handed = 0;
      for (const sink of sinks) {
        if (changed || unprimed.has(sink)) {
          sink.push(current, final);
          handed += 1;
        }
      }
      if (handed > 0) onFanOut?.(handed);
      // Only when there is something to clear: clearing a Set allocates it a new table.
      if (unprimed.size > 0) unprimed.clear();
      return changed;
    },
    end(error) {
      for (const sink of sinks) sink.push(error, true);
    },
    complete() {
      for (const sink of sinks) void sink.return?.();
    },
    clear() {
      sinks.clear();
      unprimed.clear();
    },
    count: () => sinks.size,
  };
}

/**
 * A copy of `snapshot`, every field of it whatever fields it gains, with the estimate. Built
 * field by field in the snapshot's own order: every copy then shares one hidden class in V8,
 * where `{ ...snapshot, estimatedCompletionAt }` gave each loop's last state one of its own
 * (about 430 bytes more each).
 */
export function withEta(snapshot: TaskSnapshot, estimatedCompletionAt: Date | null): TaskSnapshot {
  const copy: Record<string, unknown> = {};
  for (const field of Object.keys(snapshot)) copy[field] = snapshot[field as keyof TaskSnapshot];
  copy.estimatedCompletionAt = estimatedCompletionAt;
  return copy as unknown as TaskSnapshot;
}
