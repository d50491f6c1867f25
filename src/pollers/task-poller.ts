import type { Credential } from '../upstream/credential.ts';
import { isTerminal, type TaskSnapshot } from '../upstream/task-snapshot.ts';
import type { TasksClient } from '../upstream/tasks-client.ts';
import { createLimiter } from './limiter.ts';
import { createLocalCoordinator, type LoopCoordinator } from './loop-coordinator.ts';
import { createPollLoop, type PollLoop } from './poll-loop.ts';
import { type BackoffOptions, exponentialBackoffWithJitter, realScheduler, type Scheduler } from './scheduler.ts';
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
  /** Upstream GETs in flight at once, over all loops and reads. Default 64. */
  maxConcurrentRequests?: number;
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
}

export interface TaskPollerStats {
  /** Active poll loops. */
  loops: number;
  /** Watchers over all loops. */
  subscribers: number;
  /** Upstream GETs in flight. */
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
    maxConcurrentRequests = 64,
    backoff = exponentialBackoffWithJitter,
    coordinator = createLocalCoordinator(),
    scheduler = realScheduler,
    now = Date.now,
    random = Math.random,
    onFanOut,
    onDelivered,
  } = options;
  const terminalCache = options.terminalCache ?? createTerminalCache({ now });
  const loops = new Map<string, PollLoop>();
  const reads = new Map<string, Promise<TaskSnapshot>>();
  const limiter = createLimiter(maxConcurrentRequests);
  const fetch = (credential: Credential, taskId: string, signal: AbortSignal) =>
    limiter.run(() => client.getTask(taskId, credential, { signal }));

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
      onTerminal: (snapshot) => terminalCache.set(key, snapshot),
      onStopped: () => {
        if (loops.get(key) === loop) loops.delete(key);
      },
    });
    loops.set(key, loop);
    return loop;
  }

  function fetchShared(key: string, credential: Credential, taskId: string): Promise<TaskSnapshot> {
    const existing = reads.get(key);
    if (existing) return existing;
    const request = limiter
      .run(() => client.getTask(taskId, credential))
      .then((snapshot) => {
        if (isTerminal(snapshot.status)) terminalCache.set(key, snapshot);
        const loop = loops.get(key);
        if (loop) loop.publish(snapshot);
        else coordinator.announce(key, snapshot);
        return snapshot;
      })
      .finally(() => reads.delete(key));
    reads.set(key, request);
    return request;
  }

  return {
    subscribe(credential, taskId) {
      const key = keyOf(credential, taskId);
      const cached = terminalCache.get(key);
      let loop = loops.get(key);
      // The last watcher leaving stops the loop and aborts its request.
      const sink = createTaskSink((left) => loop?.remove(left), onDelivered, now);
      if (cached) {
        sink.push(cached, true);
        return sink;
      }
      loop ??= startLoop(key, credential, taskId);
      loop.add(sink);
      return sink;
    },

    async read(credential, taskId) {
      const key = keyOf(credential, taskId);
      const cached = terminalCache.get(key);
      if (cached) return cached;
      const loop = loops.get(key);
      const fresh = loop?.fresh();
      if (fresh) return fresh;
      const pending = loop?.inflight();
      // A request the loop gave up (its last watcher left) is no answer: fetch again.
      const settled = pending ? await pending : null;
      return settled ?? fetchShared(key, credential, taskId);
    },

    async waitForEnd(credential, taskId, maxMs) {
      const sink = this.subscribe(credential, taskId);
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

    nudge(credential, taskId) {
      return this.nudgeKey(keyOf(credential, taskId));
    },

    nudgeKey(key) {
      coordinator.nudge(key);
      const loop = loops.get(key);
      loop?.pollNow(true);
      return loop !== undefined;
    },

    stats() {
      let subscribers = 0;
      for (const loop of loops.values()) subscribers += loop.watchers();
      return { loops: loops.size, subscribers, inflight: limiter.active(), terminal: terminalCache.size };
    },

    dispose() {
      for (const loop of [...loops.values()]) loop.dispose();
    },
  };
}
