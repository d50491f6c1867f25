import { context as otelContext } from '@opentelemetry/api';
import { TooManySubscriptionsError } from '../errors.ts';
import { type BackoffOptions, exponentialBackoffWithJitter, realScheduler, type Scheduler } from '../lib/scheduler.ts';
import type { Credential } from '../upstream/credential.ts';
import { isTerminal, type TaskSnapshot } from '../upstream/task-snapshot.ts';
import type { RequestOptions, TasksClient } from '../upstream/tasks-client.ts';
import { createLocalCoordinator, type LoopCoordinator } from './loop-coordinator.ts';
import { createPollLoop, type PollLoop } from './poll-loop.ts';
import { createTaskSink, type TaskSink } from './task-sink.ts';
import { createTerminalCache, type TerminalCache } from './terminal-cache.ts';

export interface TaskPollerOptions {
  client: Pick<TasksClient, 'getTask'>;
  /** First and shortest poll interval; snapped back to on every change. Default 2 000 ms. */
  intervalMs?: number;
  /** Longest interval while nothing changes (it stretches by 1.5x a quiet poll). Default 5 000 ms. */
  maxIntervalMs?: number;
  /** A loop older than this ends its watchers with `PollTimeoutError`. Default 1 800 000 ms (30 min). */
  timeoutMs?: number;
  /** Longest back-off after transient faults. Default 30 000 ms. */
  maxBackoffMs?: number;
  /** Interval jitter, as a ratio. Default 0.1 (±10 %). */
  jitter?: number;
  /** Poll loops one key (credential hash) may run; past it a new watched task gets `TOO_MANY_SUBSCRIPTIONS`. Default 1 000. */
  maxLoopsPerKey?: number;
  /** Poll loops over all keys; past it the same. Default 100 000. */
  maxLoops?: number;
  /** Delay before retry `attempt` after a transient fault. Default `exponentialBackoffWithJitter`. */
  backoff?: (attempt: number, options: BackoffOptions) => number;
  coordinator?: LoopCoordinator;
  terminalCache?: TerminalCache;
  scheduler?: Scheduler;
  now?: () => number;
  random?: () => number;
  /** Told how many watchers each new state was handed to (the dedup factor). */
  onFanOut?: (subscribers: number) => void;
  /** Told how long (ms) each delivered state waited between the loop and its watcher. */
  onDelivered?: (waitedMs: number) => void;
  /** Tracing: the trace context a new loop is started in (its operation's), which its reads carry. Default: none. */
  traceOrigin?: () => unknown;
}

export interface TaskPollerStats {
  /** Active poll loops. */
  loops: number;
  /** Watchers over all loops. */
  subscribers: number;
  /** Upstream GETs asked for and not answered yet (queued in the request scheduler or in flight). */
  inflight: number;
  /** Finished tasks remembered. */
  terminal: number;
}

export interface TaskPoller {
  /** Watches a task: the current state first, then every change, ending after one terminal state or error. */
  subscribe(credential: Credential, taskId: string): TaskSink;
  /** The current state, from a fresh snapshot or the terminal cache when there is one, else one shared GET. */
  read(credential: Credential, taskId: string): Promise<TaskSnapshot>;
  /**
   * Watches a task until it ends or `maxMs` pass, and returns the last state
   * seen (null if none arrived); errors that end the watch are thrown.
   */
  waitForEnd(credential: Credential, taskId: string, maxMs: number): Promise<TaskSnapshot | null>;
  /**
   * A webhook said the task changed: re-reads it now where this process watches
   * it, and tells the other processes that do. False when nobody watches it here.
   */
  nudge(credential: Credential, taskId: string): boolean;
  /** The same for a loop known only by its key (`<credential hash>:<task id>`), as another replica's webhook token names it. */
  nudgeKey(key: string): boolean;
  stats(): TaskPollerStats;
  /** Stops every loop, completing its watchers. */
  dispose(): void;
}

/** Creates the shared poller: one loop per (credential, task) while anyone watches it. */
export function createTaskPoller(options: TaskPollerOptions): TaskPoller {
  const {
    client,
    intervalMs = 2_000, // 2 s
    maxIntervalMs = 5_000, // 5 s
    timeoutMs = 1_800_000, // 30 min
    maxBackoffMs = 30_000, // 30 s
    jitter = 0.1,
    maxLoopsPerKey = 1_000,
    maxLoops = 100_000,
    backoff = exponentialBackoffWithJitter,
    coordinator = createLocalCoordinator(),
    scheduler = realScheduler,
    now = Date.now,
    random = Math.random,
    onFanOut,
    onDelivered,
    traceOrigin,
  } = options;
  const terminalCache = options.terminalCache ?? createTerminalCache({ now });
  const loops = new Map<string, PollLoop>();
  const reads = new Map<string, Promise<TaskSnapshot>>();
  /** Loops per credential hash, for `maxLoopsPerKey`. */
  const loopsPerKey = new Map<string, number>();
  let outstanding = 0;
  const counted = <T>(request: Promise<T>): Promise<T> => {
    outstanding += 1;
    return request.then(
      (value) => {
        outstanding -= 1;
        return value;
      },
      (error: unknown) => {
        outstanding -= 1;
        throw error;
      },
    );
  };
  // The client's own scheduler bounds what is in flight, per key and in all, and orders it by the hints.
  const fetch = (credential: Credential, taskId: string, requestOptions: RequestOptions) =>
    counted(client.getTask(taskId, credential, requestOptions));

  const keyOf = (credential: Credential, taskId: string) => `${credential.hash}:${taskId}`;

  function startLoop(key: string, credential: Credential, taskId: string): PollLoop {
    const loop = createPollLoop({
      key,
      credential,
      taskId,
      fetch,
      coordinator,
      intervalMs,
      maxIntervalMs,
      timeoutMs,
      maxBackoffMs,
      jitter,
      backoff,
      scheduler,
      now,
      random,
      onFanOut,
      onTerminal: (snapshot) => terminalCache.set(credential.hash, taskId, snapshot),
      onStopped: () => {
        if (loops.get(key) !== loop) return;
        loops.delete(key);
        const left = (loopsPerKey.get(credential.hash) ?? 1) - 1;
        if (left > 0) loopsPerKey.set(credential.hash, left);
        else loopsPerKey.delete(credential.hash);
      },
      trace: traceOrigin?.(),
    });
    loops.set(key, loop);
    loopsPerKey.set(credential.hash, (loopsPerKey.get(credential.hash) ?? 0) + 1);
    return loop;
  }

  function fetchShared(key: string, credential: Credential, taskId: string): Promise<TaskSnapshot> {
    const existing = reads.get(key);
    if (existing) return existing;
    const request = counted(client.getTask(taskId, credential))
      .then((snapshot) => {
        if (isTerminal(snapshot.status)) terminalCache.set(credential.hash, taskId, snapshot);
        const loop = loops.get(key);
        if (loop) loop.publish(snapshot);
        else coordinator.announce(key, snapshot);
        return snapshot;
      })
      .finally(() => reads.delete(key));
    reads.set(key, request);
    return request;
  }

  function subscribe(credential: Credential, taskId: string): TaskSink {
    const key = keyOf(credential, taskId);
    const cached = terminalCache.get(credential.hash, taskId);
    let loop = loops.get(key);
    // The last watcher leaving stops the loop and aborts its request.
    const sink = createTaskSink((left) => loop?.remove(left), onDelivered, now);
    if (cached) {
      sink.push(cached, true);
      return sink;
    }
    if (!loop && (loops.size >= maxLoops || (loopsPerKey.get(credential.hash) ?? 0) >= maxLoopsPerKey)) {
      const message =
        loops.size >= maxLoops
          ? `The gateway already watches ${maxLoops} tasks in all (MAX_LOOPS).`
          : `The gateway already watches ${maxLoopsPerKey} tasks for this API key (MAX_LOOPS_PER_KEY).`;
      sink.push(new TooManySubscriptionsError(message), true);
      return sink;
    }
    loop ??= startLoop(key, credential, taskId);
    loop.add(sink);
    return sink;
  }

  function nudgeKey(key: string): boolean {
    coordinator.nudge(key);
    const loop = loops.get(key);
    loop?.pollNow(true);
    return loop !== undefined;
  }

  return {
    subscribe,

    async read(credential, taskId) {
      const key = keyOf(credential, taskId);
      const cached = terminalCache.get(credential.hash, taskId);
      if (cached) return cached;
      const loop = loops.get(key);
      const fresh = loop?.fresh();
      if (fresh) return fresh;
      // Watchers wait for the loop's read: it goes ahead of the key's polls. A query does not wait for
      // it while it is queued (behind other first reads, unbounded): it is a query like any other,
      // urgent and bounded by the queue timeout. A read already sent is the answer.
      const queued = loop?.promote() ?? false;
      const pending = queued ? null : loop?.inflight();
      if (!pending) return fetchShared(key, credential, taskId);
      // A request the loop gave up (its last watcher left) is no answer: fetch again, in the caller's
      // trace context (tracing follows no await by itself).
      const again = otelContext.bind(otelContext.active(), () => fetchShared(key, credential, taskId));
      return (await pending) ?? again();
    },

    async waitForEnd(credential, taskId, maxMs) {
      const sink = subscribe(credential, taskId);
      const timer = scheduler.setTimeout(() => void sink.return?.(), maxMs);
      let last: TaskSnapshot | null = null;
      try {
        for await (const event of sink) {
          if (event instanceof Error) throw event;
          last = event;
        }
      } finally {
        scheduler.clearTimeout(timer);
      }
      return last;
    },

    nudge: (credential, taskId) => nudgeKey(keyOf(credential, taskId)),
    nudgeKey,

    stats() {
      let subscribers = 0;
      for (const loop of loops.values()) subscribers += loop.watchers();
      return { loops: loops.size, subscribers, inflight: outstanding, terminal: terminalCache.size };
    },

    dispose() {
      for (const loop of [...loops.values()]) loop.dispose();
    },
  };
}
