import type { TaskEvent } from './task-sink.ts';

/** One event of a merged watch: which task, and its state or error. */
export interface TaskWatchEvent {
  taskId: string;
  event: TaskEvent;
}

/**
 * Merges the watches of several tasks (each a conflating sink of the shared
 * poller) into one stream, in the order events arrive, ending when every watch
 * has ended. Each watch is asked for its next event only once its previous one
 * was taken, so at most one event per task waits here and the rest stays
 * conflated in the sinks: memory is bounded by the number of tasks. Leaving
 * (`return()`) leaves every watch still open.
 */
export function mergeTaskWatches(
  watches: ReadonlyArray<readonly [string, AsyncIterable<TaskEvent>]>,
): AsyncIterableIterator<TaskWatchEvent> {
  const entries = watches.map(([taskId, watch]) => ({ taskId, iterator: watch[Symbol.asyncIterator](), done: false }));
  const ready: Array<{ index: number; result: IteratorResult<TaskEvent> }> = [];
  /** Watches whose last event was taken: asked for the next one when the consumer asks. */
  const due = new Set(entries.keys());
  let open = entries.length;
  let closed = false;
  let wake: (() => void) | null = null;

  const arrive = (index: number, result: IteratorResult<TaskEvent>) => {
    ready.push({ index, result });
    wake?.();
  };
  const ask = (index: number) => {
    entries[index]!.iterator.next().then(
      (result) => arrive(index, result),
      // A watch that fails is a watch that ended.
      () => arrive(index, { value: undefined, done: true }),
    );
  };

  const merged: AsyncIterableIterator<TaskWatchEvent> = {
    async next() {
      for (const index of due) ask(index);
      due.clear();
      for (;;) {
        if (closed) return { value: undefined, done: true };
        const item = ready.shift();
        if (item) {
          const entry = entries[item.index]!;
          if (item.result.done) {
            entry.done = true;
            open -= 1;
            continue;
          }
          due.add(item.index);
          return { value: { taskId: entry.taskId, event: item.result.value }, done: false };
        }
        if (open === 0) {
          closed = true;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
    },
    async return() {
      if (!closed) {
        closed = true;
        await Promise.all(entries.filter((entry) => !entry.done).map((entry) => entry.iterator.return?.()));
        wake?.();
      }
      return { value: undefined, done: true };
    },
    async throw() {
      return merged.return!();
    },
    [Symbol.asyncIterator]: () => merged,
  };
  return merged;
}
