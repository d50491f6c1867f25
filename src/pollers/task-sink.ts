import type { GatewayError } from '../errors.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

/** What a watcher receives: states, or one error that ends the stream. */
export type TaskEvent = TaskSnapshot | GatewayError;

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
  return new Sink(onClose, onDeliver, now);
}

const done = (): IteratorResult<TaskEvent> => ({ value: undefined, done: true });

/** A class, not a literal with closures: its methods and the `closed` getter are shared (a getter in a literal means dictionary mode). */
class Sink implements TaskSink {
  private pending: TaskEvent | undefined = undefined;
  private pushedAt = 0;
  private waiter: ((result: IteratorResult<TaskEvent>) => void) | undefined = undefined;
  private finalQueued = false;
  private isClosed = false;
  constructor(
    private readonly onClose: (sink: TaskSink) => void,
    private readonly onDeliver: ((waitedMs: number) => void) | undefined,
    private readonly now: () => number,
  ) {}

  get closed(): boolean {
    return this.isClosed || this.finalQueued;
  }

  private close(): IteratorResult<TaskEvent> {
    if (!this.isClosed) {
      this.isClosed = true;
      this.pending = undefined;
      if (!this.finalQueued) this.onClose(this);
      this.waiter?.(done());
      this.waiter = undefined;
    }
    return done();
  }

  push(event: TaskEvent, final = false): void {
    if (this.isClosed || this.finalQueued) return;
    this.finalQueued = final;
    if (this.waiter) {
      const resolve = this.waiter;
      this.waiter = undefined;
      this.onDeliver?.(0);
      resolve({ value: event, done: false });
    } else {
      this.pending = event;
      if (this.onDeliver) this.pushedAt = this.now();
    }
  }

  next(): Promise<IteratorResult<TaskEvent>> {
    if (this.pending !== undefined) {
      const value = this.pending;
      this.pending = undefined;
      this.onDeliver?.(this.now() - this.pushedAt);
      return Promise.resolve({ value, done: false });
    }
    if (this.isClosed || this.finalQueued) {
      this.isClosed = true;
      return Promise.resolve(done());
    }
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  return(): Promise<IteratorResult<TaskEvent>> {
    return Promise.resolve(this.close());
  }

  throw(): Promise<IteratorResult<TaskEvent>> {
    return Promise.resolve(this.close());
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
