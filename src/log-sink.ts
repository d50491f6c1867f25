import { constants, openSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';

/** Where pino writes: whole lines, never blocking, never buffering without bound. */
export interface LogSink {
  /** Queues one line (pino calls it once per log record); drops it when the destination is too far behind. */
  write(line: string): void;
  /** Lines dropped so far because the destination could not take them. */
  dropped(): number;
  /** One last attempt, without blocking, to write what is queued (before `process.exit`). */
  flush(): void;
}

export interface LogSinkOptions {
  /** The file descriptor written to. Default 1 (stdout). */
  fd?: number;
  /** Most bytes queued while the destination does not take them; lines past it are dropped. Default 1 048 576 (1 MiB). */
  maxQueuedBytes?: number;
  /** How soon a destination that refused a write is tried again. Default 50 ms. */
  retryMs?: number;
  /** Schedules a retry; must not keep the process alive. Default: an unref'd `setTimeout`. */
  schedule?: (run: () => void, ms: number) => void;
}

/**
 * A log destination that never blocks the process and never grows without
 * bound. pino's own (sonic-boom) writes synchronously and retries forever when
 * stdout is a pipe nobody reads (a stuck log shipper), even inside
 * `process.exit`, so the process hangs for good. Here the descriptor is opened
 * again, non-blocking, through `/proc/self/fd` (pipes, FIFOs, files, terminals);
 * what it refuses waits in a bounded queue and is retried later, and lines past
 * the bound are dropped and counted. Where it cannot be reopened (a socket), lines
 * go to Node's own asynchronous stream, with the same bound.
 */
export function createLogSink(options: LogSinkOptions = {}): LogSink {
  const {
    fd = 1,
    maxQueuedBytes = 1 << 20, // 1 MiB
    retryMs = 50, // 50 ms
    schedule = (run, ms) => void setTimeout(run, ms).unref(),
  } = options;
  let target: number | Writable | undefined;
  const queue: Buffer[] = [];
  let queuedBytes = 0;
  let offset = 0; // bytes of queue[0] already written
  let dropped = 0;
  let retrying = false;

  function open(): number | Writable {
    try {
      return openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_APPEND);
    } catch {
      return fd === 2 ? process.stderr : process.stdout;
    }
  }

  function drain(): void {
    while (queue.length > 0) {
      const line = queue[0]!;
      let written: number;
      try {
        written = writeSync(target as number, line, offset);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          retryLater();
          return;
        }
        // The reader is gone (EPIPE) or the descriptor broke: nothing queued can be written.
        dropped += queue.length;
        queue.length = 0;
        queuedBytes = 0;
        offset = 0;
        return;
      }
      offset += written;
      if (offset < line.length) {
        retryLater();
        return;
      }
      queue.shift();
      queuedBytes -= line.length;
      offset = 0;
    }
  }

  function retryLater(): void {
    if (retrying) return;
    retrying = true;
    schedule(() => {
      retrying = false;
      drain();
    }, retryMs);
  }

  return {
    write(line) {
      target ??= open();
      if (typeof target !== 'number') {
        if (target.writableLength > maxQueuedBytes) dropped += 1;
        else target.write(line);
        return;
      }
      const bytes = Buffer.from(line);
      if (queuedBytes + bytes.length > maxQueuedBytes) {
        dropped += 1;
        return;
      }
      queue.push(bytes);
      queuedBytes += bytes.length;
      if (!retrying) drain();
    },
    dropped: () => dropped,
    flush() {
      if (typeof target === 'number') drain();
    },
  };
}
