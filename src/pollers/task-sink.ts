import type { UpstreamError } from '../upstream/errors.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

/** What a watcher receives: states, or one error that ends the stream. */
export type TaskEvent = TaskSnapshot | UpstreamError;

/**
 * One watcher of a task, as held by its poll loop: a conflating async
 * iterator. It keeps at most one undelivered event (the newest), so a slow
 * consumer costs constant memory and never holds up the loop or anyone else;
 * a final event (terminal state or error) is never overwritten and is always
 * delivered before the iterator ends.
 */
export interface TaskSink extends AsyncIterableIterator<TaskEvent> {
  /** Offers an event; `final` ends the stream once it is delivered. Ignored after the end. */
  push(event: TaskEvent, final?: boolean): void;
  /** Whether the stream has ended (final event queued, or the consumer left). */
  readonly closed: boolean;
}

/**
 * Creates a sink; `onClose` runs once when the consumer leaves before the final
 * event; `onDeliver`, when given, is told how long each event waited (ms, by `now`).
 */
export function createTaskSink(
  onClose: (sink: TaskSink) => void,
  onDeliver?: (waitedMs: number) => void,
  now: () => number = Date.now,
): TaskSink {
  let pending: TaskEvent | undefined;
  let pushedAt = 0;
  let waiter: ((result: IteratorResult<TaskEvent>) => void) | undefined;
  let finalQueued = false;
  let closed = false;

  const done = (): IteratorResult<TaskEvent> => ({ value: undefined, done: true });
  const close = (): IteratorResult<TaskEvent> => {
    if (!closed) {
      closed = true;
      pending = undefined;
      if (!finalQueued) onClose(sink);
      waiter?.(done());
      waiter = undefined;
    }
    return done();
  };

  const sink: TaskSink = {
    get closed() {
      return closed || finalQueued;
    },
    push(event, final = false) {
      if (closed || finalQueued) return;
      finalQueued = final;
      if (waiter) {
        const resolve = waiter;
        waiter = undefined;
        onDeliver?.(0);
        resolve({ value: event, done: false });
      } else {
        pending = event;
        if (onDeliver) pushedAt = now();
      }
    },
    next() {
      if (pending !== undefined) {
        const value = pending;
        pending = undefined;
        onDeliver?.(now() - pushedAt);
        return Promise.resolve({ value, done: false });
      }
      if (closed || finalQueued) {
        closed = true;
        return Promise.resolve(done());
      }
      return new Promise((resolve) => {
        waiter = resolve;
      });
    },
    return: () => Promise.resolve(close()),
    throw: () => Promise.resolve(close()),
    [Symbol.asyncIterator]() {
      return sink;
    },
  };
  return sink;
}
