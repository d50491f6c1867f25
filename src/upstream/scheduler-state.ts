import { QueueTimeoutError } from '../errors.ts';
import type { Scheduler } from '../lib/scheduler.ts';
import type { Abortable } from '../lib/stop-signal.ts';
import { RateLimitedError, UnauthenticatedError } from './errors.ts';
import type { BudgetLesson } from './gcra.ts';
import { createKeyConcurrency, type KeyConcurrency } from './key-concurrency.ts';
import { createRequestLanes, type RequestLanes, type RequestPriority } from './request-lanes.ts';
import type { KeyStats, ScheduleHints } from './request-scheduling.ts';

/** What the request scheduler (request-scheduler.ts) keeps of each request and each key. */

/** One request in the scheduler (request-scheduler.ts), from `run` until it settles. */
export interface Entry {
  send: (signal: Abortable) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  priority: RequestPriority;
  held: boolean;
  lastReadAt: number;
  seq: number;
  queuedAt: number;
  attempts: number;
  timer: unknown;
  signal: Abortable | undefined;
  onAbort: (() => void) | undefined;
  /** Sent or refused: out of the queue for good (until a 429 sends it back). */
  settled: boolean;
}

/** What the scheduler keeps of one key. */
export interface KeyState {
  hash: string;
  waiting: RequestLanes<Entry>;
  /** Short requests in flight. */
  inFlight: number;
  /** Long-held requests in flight. */
  heldInFlight: number;
  concurrency: KeyConcurrency;
  /** A slot of the budget is awaited on `timer`: nothing else of the key is sent meanwhile. */
  sleeping: boolean;
  timer: unknown;
  /** Requests waited (for the budget or for room) since the window began. */
  saturated: boolean;
  /** When the current window of latency samples began, ms. */
  windowAt: number;
}

/** A request as `run` receives it, not yet queued. */
export function newEntry(
  send: Entry['send'],
  resolve: Entry['resolve'],
  reject: Entry['reject'],
  hints: ScheduleHints & { signal?: Abortable },
  seq: number,
  queuedAt: number,
): Entry {
  const { priority = 'urgent', held = false, lastReadAt = 0, signal } = hints;
  return {
    send,
    resolve,
    reject,
    priority,
    held,
    lastReadAt,
    seq,
    queuedAt,
    attempts: 0,
    timer: null,
    signal,
    onAbort: undefined,
    settled: false,
  };
}

/** The `count` keys with most requests in flight and waiting, described for metrics. */
export function busiestKeys(
  states: Iterable<KeyState>,
  count: number,
  describe: (state: KeyState) => Omit<KeyStats, 'key' | 'inFlight' | 'queued'>,
): KeyStats[] {
  const load = (state: KeyState) => state.inFlight + state.heldInFlight + state.waiting.size;
  const busy: KeyState[] = [];
  for (const state of states) if (load(state) > 0) busy.push(state);
  busy.sort((a, b) => load(b) - load(a));
  return busy.slice(0, count).map((state) => ({
    key: state.hash.slice(0, 8),
    ...describe(state),
    inFlight: state.inFlight + state.heldInFlight,
    queued: state.waiting.size,
  }));
}

/** A key the scheduler has not seen yet (or has forgotten). */
export function newKeyState(hash: string): KeyState {
  const waiting = createRequestLanes<Entry>();
  const concurrency = createKeyConcurrency();
  return { hash, waiting, inFlight: 0, heldInFlight: 0, concurrency, sleeping: false, timer: null, saturated: false, windowAt: 0 };
}

export interface WaitingOptions {
  timers: Scheduler;
  now: () => number;
  /** Longest wait of an urgent request in the queue, ms. */
  maxQueueWaitMs: number;
  onThrottled?: (reason: 'queue_timeout') => void;
  /** Told of each waiting request failed because its key was answered 401. */
  onFailFast?: () => void;
  /** Called when a request leaves a key's queue without being sent. */
  forgetIfIdle: (state: KeyState) => void;
}

/** How a waiting request ends without being sent: its caller's signal aborts, or its queue deadline passes. */
export function createWaitingEntry(options: WaitingOptions) {
  const { timers, now, maxQueueWaitMs, onThrottled, onFailFast, forgetIfIdle } = options;

  /** Out of the queue: its deadline and its abort listener go. */
  function settle(entry: Entry): void {
    entry.settled = true;
    timers.clearTimeout(entry.timer);
    entry.timer = null;
    if (entry.onAbort) entry.signal?.removeEventListener('abort', entry.onAbort);
    entry.onAbort = undefined;
  }

  /** A waiting request whose signal aborts leaves the queue at once; an urgent one fails with `TIMEOUT` at its deadline. */
  function watch(state: KeyState, entry: Entry): void {
    if (entry.signal) {
      entry.onAbort = () => {
        if (!state.waiting.remove(entry)) return;
        settle(entry);
        entry.reject(entry.signal!.reason);
        forgetIfIdle(state);
      };
      entry.signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    if (entry.priority !== 'urgent') return;
    entry.timer = timers.setTimeout(
      () => {
        if (!state.waiting.remove(entry)) return;
        settle(entry);
        onThrottled?.('queue_timeout');
        entry.reject(
          new QueueTimeoutError(
            `The request waited ${maxQueueWaitMs} ms in the gateway's queue for this API key's upstream budget and was not sent.`,
          ),
        );
        forgetIfIdle(state);
      },
      Math.max(0, entry.queuedAt + maxQueueWaitMs - now()),
    );
  }

  return {
    settle,
    watch,
    /** Fails everything the key has waiting (`failingFast`: because the upstream answered 401). */
    failAll(state: KeyState, error: () => Error, failingFast = true): void {
      for (const entry of state.waiting.drain()) {
        settle(entry);
        if (failingFast) onFailFast?.();
        entry.reject(error());
      }
    },
    /** Puts a request back in its key's queue (after a 429): at the front of its lane, watched again. */
    wait(state: KeyState, entry: Entry, front: boolean): void {
      entry.settled = false;
      state.waiting.add(entry, front);
      watch(state, entry);
    },
  };
}

/** What a request of a key the upstream answered 401 a moment ago gets, without an upstream call. */
export function keyRefusedError(failFastMs: number): UnauthenticatedError {
  return new UnauthenticatedError(
    `The upstream rejected this API key; it is refused here for ${failFastMs / 1_000} s without asking the upstream again.`,
  );
}

/** What a 429 teaches the key's budget. */
export function lessonOf(error: RateLimitedError, now: number): BudgetLesson {
  const resumeAt = error.retryAfterMs === null ? null : now + error.retryAfterMs;
  const { quota } = error;
  return quota ? { kind: 'quota', ratePerSec: (quota.cap * 1_000) / quota.windowMs, resumeAt } : { kind: 'slower', resumeAt };
}

/** What a request gets when its key already has `maxQueued` requests waiting. */
export function queueFullError(maxQueued: number): RateLimitedError {
  const message = `This API key already has ${maxQueued} upstream requests waiting in the gateway; retry later.`;
  return new RateLimitedError(message, null, null, false);
}

/** What an urgent request gets when the key's pace could not send it within the queue's bound. */
export function budgetSpentError(expectedMs: number): RateLimitedError {
  const message = `The upstream budget of this API key is spent for now: the request would wait about ${Math.ceil(expectedMs / 1000)} s in the gateway before it could be sent.`;
  return new RateLimitedError(message, Math.ceil(expectedMs), null, false);
}
