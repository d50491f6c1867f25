import { GatewayError, PollTimeoutError } from '../errors.ts';
import type { Scheduler } from '../lib/scheduler.ts';
import { type Abortable, StopSignal } from '../lib/stop-signal.ts';
import type { Credential } from '../upstream/credential.ts';
import { UpstreamUnavailableError } from '../upstream/errors.ts';
import { isTerminal, type TaskSnapshot } from '../upstream/task-snapshot.ts';
import type { RequestOptions } from '../upstream/tasks-client.ts';
import type { LoopCoordinator } from './loop-coordinator.ts';
import { createLoopPace, type LoopPaceOptions } from './loop-pace.ts';
import { createLoopWatchers } from './loop-watchers.ts';
import type { TaskSink } from './task-sink.ts';

export interface PollLoopOptions extends LoopPaceOptions {
  /** The loop's key, `<credential hash>:<task id>`. */
  key: string;
  credential: Credential;
  taskId: string;
  /** One upstream GET of the task, with the hints of the key's request scheduler (priority, last read). */
  fetch: (credential: Credential, taskId: string, options: RequestOptions & { signal: Abortable }) => Promise<TaskSnapshot>;
  coordinator: LoopCoordinator;
  /** Age (ms) at which the loop ends its watchers with `PollTimeoutError`. */
  timeoutMs: number;
  scheduler: Scheduler;
  now: () => number;
  /** Told how many watchers each new state was handed to. */
  onFanOut?: (subscribers: number) => void;
  /** Told the terminal state, once, just before the loop stops. */
  onTerminal: (snapshot: TaskSnapshot) => void;
  /** Told once when the loop has stopped, for whatever reason. */
  onStopped: () => void;
  /** The trace context of the operation that started the loop, handed with each read (`ScheduleHints.trace`). Default: none. */
  trace?: unknown;
}

/** One (credential, task) watched by this process: one poll at a time, its watchers, its pace. */
export interface PollLoop {
  /** Adds a watcher: it gets the last state when that is fresh (or the loop backs off), else the next poll's. */
  add(sink: TaskSink): void;
  /** Removes a watcher; the last one leaving stops the loop and aborts its request. */
  remove(sink: TaskSink): void;
  /** Polls at once; `force` polls even where another process holds the loop (a webhook said the task changed). */
  pollNow(force?: boolean): void;
  /** The last state, if it is no older than the current interval; else null. */
  fresh(): TaskSnapshot | null;
  /** The result of the request in flight, null when there is none; resolves to null if the loop stops first. */
  inflight(): Promise<TaskSnapshot | null> | null;
  /** Shares a snapshot fetched outside the loop with every process in it (this one included). */
  publish(snapshot: TaskSnapshot): void;
  /** Watchers now. */
  watchers(): number;
  /**
   * Moves the loop's request ahead of the key's polls while it waits in the request scheduler
   * (someone waits for it now): true when it still waits, false when it was sent or there is none.
   */
  promote(): boolean;
  /** Stops the loop, completing its watchers. */
  dispose(): void;
}

/** The reason a loop's request is aborted with when the loop stops. */
const loopStopped = new Error('poll loop stopped');

/** Starts one loop; it polls when its first watcher is added and stops when the last leaves or the task ends. */
export function createPollLoop(options: PollLoopOptions): PollLoop {
  const {
    key,
    credential,
    taskId,
    fetch,
    coordinator,
    timeoutMs, // ms
    scheduler,
    now,
    onFanOut,
    onTerminal,
    onStopped,
  } = options;
  const watchers = createLoopWatchers({ now, onFanOut });
  const pace = createLoopPace(options);
  const startedAt = now();
  let timer: unknown = null;
  /** The read in flight (queued in the key's request scheduler or sent). */
  let request: Promise<TaskSnapshot> | null = null;
  /** Aborts the request in flight when the loop stops; one per loop, since only the stop aborts (see StopSignal). */
  const stopping = new StopSignal();
  /** Moves the request ahead of the polls while it is queued in the request scheduler; null once sent. */
  let promote: (() => boolean) | null = null;
  /** `polling`: asking the coordinator or fetching; at most one poll at a time. */
  let phase: 'idle' | 'polling' | 'stopped' = 'idle';
  /** A webhook arrived while a poll was under way: poll again as soon as it ends. */
  let pollAgain = false;
  /** Whether the coordinator was asked for a shared snapshot to start from. */
  let askedInitial = false;
  // A function, not a narrowed variable: `stop()` may run during any await.
  const stopped = () => phase === 'stopped';

  const membership = coordinator.join(
    key,
    (snapshot) => accept(snapshot),
    // A webhook reached another process: the lease holder re-reads now.
    () => pollNow(),
  );

  /**
   * What each read tells the key's request scheduler; one object per loop, brought up to date before
   * each read (the scheduler reads it when the read is asked for), like the callbacks below: a loop's
   * steady state, one read per interval, allocates nothing of its own.
   */
  const hints: RequestOptions & { signal: Abortable } = {
    signal: stopping,
    priority: 'poll',
    lastReadAt: 0,
    onQueued: (move) => {
      promote = move;
    },
    trace: options.trace,
  };
  const pollFromTimer = () => poll();
  const pollIfAllowed = (allowed: boolean) => (allowed ? send(false) : skip());
  const skipAfterFailure = () => skip();

  /** The next poll, an interval from now. */
  function schedule(): void {
    if (stopped()) return;
    scheduler.clearTimeout(timer);
    timer = scheduler.setTimeout(pollFromTimer, pace.next());
  }

  function pollNow(force = false): void {
    if (phase === 'polling') {
      // A request still waiting in the key's queue will read the new state: it only needs to go sooner.
      // One already sent may have read the old state: poll again when it ends.
      if (!promote?.()) pollAgain = true;
      return;
    }
    scheduler.clearTimeout(timer);
    timer = null;
    poll(force);
  }

  /** One poll: at most one at a time; `force` reads even where another process holds the loop. */
  function poll(force = false): void {
    timer = null;
    if (phase !== 'idle') return;
    if (now() - startedAt >= timeoutMs) {
      end(new PollTimeoutError(`The task did not end within ${timeoutMs} ms of watching.`));
      return;
    }
    phase = 'polling';
    if (!askedInitial) {
      void startFromShared(force);
      return;
    }
    const allowed = force || membership.mayPoll();
    if (allowed === true) send(force);
    else if (allowed === false) skip();
    else allowed.then(pollIfAllowed, skipAfterFailure);
  }

  /** The first poll: another process may have the state already; then it starts from it, with no upstream call. */
  async function startFromShared(force: boolean): Promise<void> {
    askedInitial = true;
    const shared = await membership.initial();
    if (stopped()) return;
    if (shared) {
      accept(shared);
      skip();
      return;
    }
    phase = 'idle';
    poll(force);
  }

  /** Not this process's turn (or the state came from another): the next poll in an interval. */
  function skip(): void {
    schedule();
    polled();
  }

  function send(force: boolean): void {
    if (stopped()) return;
    // A watcher still waiting for its first state, or a webhook saying the task changed (`force`),
    // makes this read go ahead of the key's other polls.
    hints.priority = watchers.waiting() || force ? 'first' : 'poll';
    hints.lastReadAt = watchers.latestAt();
    request = fetch(credential, taskId, hints);
    request.then(received, failed);
  }

  function received(snapshot: TaskSnapshot): void {
    request = null;
    promote = null;
    if (stopped()) return;
    pace.answered();
    membership.publish(snapshot);
    if (!pollAgain) schedule();
    polled();
  }

  function failed(error: unknown): void {
    request = null;
    promote = null;
    if (stopped()) return;
    fault(error);
    polled();
  }

  /** The poll has ended: a webhook that came meanwhile polls again now. */
  function polled(): void {
    if (phase === 'polling') phase = 'idle';
    if (pollAgain && phase === 'idle') {
      pollAgain = false;
      pollNow(true);
    }
  }

  /** Takes a snapshot found by any process: news snaps the pace back, a terminal state stops the loop. */
  function accept(snapshot: TaskSnapshot): void {
    if (stopped()) return;
    pace.accepted(watchers.accept(snapshot));
    const current = watchers.latest()!;
    if (isTerminal(current.status)) {
      onTerminal(current);
      stop();
    }
  }

  function fault(caught: unknown): void {
    const error = caught instanceof GatewayError ? caught : new UpstreamUnavailableError('The upstream request failed.');
    if (!error.transient) {
      end(error);
      return;
    }
    scheduler.clearTimeout(timer);
    timer = scheduler.setTimeout(pollFromTimer, pace.failed(error));
  }

  /** Ends every watcher with `error` and stops the loop. */
  function end(error: GatewayError): void {
    watchers.end(error);
    stop();
  }

  function stop(): void {
    if (stopped()) return;
    phase = 'stopped';
    scheduler.clearTimeout(timer);
    timer = null;
    stopping.abort(loopStopped);
    membership.leave();
    watchers.clear();
    onStopped();
  }

  /** The last state, if it is no older than the current interval; else null. */
  const fresh = () => {
    const latest = watchers.latest();
    return latest && now() - watchers.latestAt() <= pace.intervalMs() ? latest : null;
  };

  return {
    add(sink) {
      // While the loop backs off, its last state is the best there is: no extra request.
      const current = fresh() ?? (pace.backingOff() ? watchers.latest() : null);
      watchers.add(sink, current);
      if (current) return;
      if (phase === 'idle' && !pace.backingOff()) pollNow();
      else promote?.();
    },
    remove(sink) {
      if (stopped()) return;
      if (watchers.remove(sink) === 0) stop();
    },
    pollNow,
    fresh,
    inflight() {
      if (!request) return null;
      return request.catch((error) => {
        if (error === loopStopped) return null;
        throw error;
      });
    },
    publish: (snapshot) => membership.publish(snapshot),
    watchers: watchers.count,
    promote: () => promote?.() ?? false,
    dispose() {
      watchers.complete();
      stop();
    },
  };
}
