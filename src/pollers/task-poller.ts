import type { Credential } from '../upstream/credential.ts';
import { PollTimeoutError, RateLimitedError, UpstreamError, UpstreamUnavailableError } from '../upstream/errors.ts';
import { isTerminal, type TaskSnapshot } from '../upstream/task-snapshot.ts';
import type { TasksClient } from '../upstream/tasks-client.ts';
import { createLimiter } from './limiter.ts';
import { createLocalCoordinator, type LoopCoordinator, type LoopMembership } from './loop-coordinator.ts';
import { type BackoffOptions, exponentialBackoffWithJitter, realScheduler, type Scheduler, withJitter } from './scheduler.ts';
import { differs, isBackwards } from './task-changes.ts';
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

interface Loop {
  key: string;
  credential: Credential;
  taskId: string;
  sinks: Set<TaskSink>;
  /** Watchers that have not received their first state yet. */
  unprimed: Set<TaskSink>;
  latest: TaskSnapshot | null;
  latestAt: number;
  intervalMs: number;
  failures: number;
  startedAt: number;
  timer: unknown;
  inflight: Promise<TaskSnapshot> | null;
  controller: AbortController | null;
  /** A webhook arrived while a request was in flight: poll again as soon as it ends. */
  pollAgain: boolean;
  /** Whether the coordinator was asked for a shared snapshot to start from. */
  askedInitial: boolean;
  /** A poll is under way (asking the coordinator, or fetching): at most one at a time. */
  busy: boolean;
  stopped: boolean;
  membership: LoopMembership;
}

/** The reason a loop's request is aborted with when its last watcher leaves. */
const loopStopped = new Error('poll loop stopped');

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
  const loops = new Map<string, Loop>();
  const reads = new Map<string, Promise<TaskSnapshot>>();
  const limiter = createLimiter(maxConcurrentRequests);

  const keyOf = (credential: Credential, taskId: string) => `${credential.hash}:${taskId}`;

  function startLoop(key: string, credential: Credential, taskId: string): Loop {
    const loop: Loop = {
      key,
      credential,
      taskId,
      sinks: new Set(),
      unprimed: new Set(),
      latest: null,
      latestAt: 0,
      intervalMs,
      failures: 0,
      startedAt: now(),
      timer: null,
      inflight: null,
      controller: null,
      pollAgain: false,
      askedInitial: false,
      busy: false,
      stopped: false,
      membership: undefined as unknown as LoopMembership,
    };
    loop.membership = coordinator.join(
      key,
      (snapshot) => accept(loop, snapshot),
      // A webhook reached another process: the lease holder re-reads now.
      () => pollNow(loop),
    );
    loops.set(key, loop);
    return loop;
  }

  function schedule(loop: Loop, delayMs: number): void {
    if (loop.stopped) return;
    scheduler.clearTimeout(loop.timer);
    loop.timer = scheduler.setTimeout(() => void poll(loop), withJitter(delayMs, jitter, random));
  }

  /** Polls at once; `force` polls even where another process holds the loop (a webhook said the task changed). */
  function pollNow(loop: Loop, force = false): void {
    if (loop.busy) {
      loop.pollAgain = true;
      return;
    }
    scheduler.clearTimeout(loop.timer);
    loop.timer = null;
    void poll(loop, force);
  }

  async function poll(loop: Loop, force = false): Promise<void> {
    loop.timer = null;
    if (loop.stopped || loop.busy) return;
    loop.busy = true;
    try {
      await pollOnce(loop, force);
    } finally {
      loop.busy = false;
    }
    if (loop.pollAgain && !loop.stopped) {
      loop.pollAgain = false;
      pollNow(loop, true);
    }
  }

  async function pollOnce(loop: Loop, force: boolean): Promise<void> {
    if (now() - loop.startedAt >= timeoutMs) {
      return end(loop, new PollTimeoutError(`The task did not end within ${timeoutMs} ms of watching.`));
    }
    if (!loop.askedInitial) {
      // Another process may have the state already: start from it, with no upstream call.
      loop.askedInitial = true;
      const shared = await loop.membership.initial();
      if (loop.stopped) return;
      if (shared) {
        accept(loop, shared);
        return schedule(loop, loop.intervalMs);
      }
    }
    if (!force && !(await loop.membership.mayPoll())) return schedule(loop, loop.intervalMs);
    if (loop.stopped) return;
    const controller = new AbortController();
    loop.controller = controller;
    const request = limiter.run(() => client.getTask(loop.taskId, loop.credential, { signal: controller.signal }));
    loop.inflight = request;
    let snapshot: TaskSnapshot;
    try {
      snapshot = await request;
    } catch (error) {
      loop.inflight = null;
      loop.controller = null;
      if (!loop.stopped) fault(loop, error);
      return;
    } finally {
      loop.inflight = null;
      loop.controller = null;
    }
    if (loop.stopped) return;
    if (loop.failures > 0) {
      // Recovered: back to the normal pace at once.
      loop.failures = 0;
      loop.intervalMs = intervalMs;
    }
    loop.membership.publish(snapshot);
    if (loop.stopped || loop.pollAgain) return;
    schedule(loop, loop.intervalMs);
  }

  /** Takes a snapshot found by any process: delivers it if it is a change and not a step back. */
  function accept(loop: Loop, snapshot: TaskSnapshot): void {
    if (loop.stopped) return;
    const previous = loop.latest;
    loop.latestAt = now();
    const changed = previous === null || (!isBackwards(previous, snapshot) && differs(previous, snapshot));
    if (changed) loop.latest = snapshot;
    const current = loop.latest!;
    const final = isTerminal(current.status);
    let handed = 0;
    for (const sink of loop.sinks) {
      if (changed || loop.unprimed.has(sink)) {
        sink.push(current, final);
        handed += 1;
      }
    }
    if (handed > 0) onFanOut?.(handed);
    loop.unprimed.clear();
    loop.intervalMs = changed ? intervalMs : Math.min(maxIntervalMs, Math.round(loop.intervalMs * 1.5));
    if (final) {
      terminalCache.set(loop.key, current);
      stop(loop);
    }
  }

  function fault(loop: Loop, caught: unknown): void {
    const error = caught instanceof UpstreamError ? caught : new UpstreamUnavailableError('The upstream request failed.');
    if (!error.transient) {
      end(loop, error);
      return;
    }
    loop.failures += 1;
    const waitMs =
      error instanceof RateLimitedError && error.retryAfterMs !== null
        ? Math.max(error.retryAfterMs, intervalMs)
        : backoff(loop.failures, { baseMs: intervalMs, maxMs: maxBackoffMs, random });
    scheduler.clearTimeout(loop.timer);
    // No jitter on top: the back-off has its own, and Retry-After is a floor.
    loop.timer = scheduler.setTimeout(() => void poll(loop), waitMs);
  }

  /** Ends every watcher with `error` and stops the loop. */
  function end(loop: Loop, error: UpstreamError): void {
    for (const sink of loop.sinks) sink.push(error, true);
    stop(loop);
  }

  function stop(loop: Loop): void {
    if (loop.stopped) return;
    loop.stopped = true;
    scheduler.clearTimeout(loop.timer);
    loop.timer = null;
    loop.controller?.abort(loopStopped);
    loop.membership.leave();
    loop.sinks.clear();
    loop.unprimed.clear();
    if (loops.get(loop.key) === loop) loops.delete(loop.key);
  }

  function fetchShared(key: string, credential: Credential, taskId: string): Promise<TaskSnapshot> {
    const existing = reads.get(key);
    if (existing) return existing;
    const request = limiter
      .run(() => client.getTask(taskId, credential))
      .then((snapshot) => {
        if (isTerminal(snapshot.status)) terminalCache.set(key, snapshot);
        const loop = loops.get(key);
        if (loop) loop.membership.publish(snapshot);
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
      const sink = createTaskSink(
        (left) => {
          if (!loop || loop.stopped) return;
          loop.sinks.delete(left);
          loop.unprimed.delete(left);
          // The last watcher leaving stops the loop and aborts its request.
          if (loop.sinks.size === 0) stop(loop);
        },
        onDelivered,
        now,
      );
      if (cached) {
        sink.push(cached, true);
        return sink;
      }
      loop ??= startLoop(key, credential, taskId);
      loop.sinks.add(sink);
      const fresh = loop.latest !== null && now() - loop.latestAt <= loop.intervalMs;
      // While the loop backs off, its last state is the best there is: no extra request.
      if (loop.latest && (fresh || loop.failures > 0)) sink.push(loop.latest, false);
      else {
        loop.unprimed.add(sink);
        if (!loop.busy && loop.failures === 0) pollNow(loop);
      }
      return sink;
    },

    async read(credential, taskId) {
      const key = keyOf(credential, taskId);
      const cached = terminalCache.get(key);
      if (cached) return cached;
      const loop = loops.get(key);
      if (loop?.latest && now() - loop.latestAt <= loop.intervalMs) return loop.latest;
      if (loop?.inflight) {
        try {
          return await loop.inflight;
        } catch (error) {
          if (error !== loopStopped) throw error;
        }
      }
      return fetchShared(key, credential, taskId);
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
      if (loop) pollNow(loop, true);
      return loop !== undefined;
    },

    stats() {
      let subscribers = 0;
      for (const loop of loops.values()) subscribers += loop.sinks.size;
      return { loops: loops.size, subscribers, inflight: limiter.active(), terminal: terminalCache.size };
    },

    dispose() {
      for (const loop of [...loops.values()]) {
        for (const sink of loop.sinks) void sink.return?.();
        stop(loop);
      }
    },
  };
}
