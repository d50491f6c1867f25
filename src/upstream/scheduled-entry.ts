import type { Scheduler } from '../lib/scheduler.ts';
import { QueueTimeoutError } from './errors.ts';
import type { KeyConcurrency } from './key-concurrency.ts';
import type { RequestLanes, RequestPriority } from './request-lanes.ts';

/** One request in the scheduler (request-scheduler.ts), from `run` until it settles. */
export interface Entry {
  send: (signal: AbortSignal) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  priority: RequestPriority;
  held: boolean;
  lastReadAt: number;
  seq: number;
  queuedAt: number;
  attempts: number;
  timer: unknown;
  signal: AbortSignal | undefined;
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
  /** Lessons learned so far: a slot reserved before the latest one is not used. */
  lessons: number;
  /** The budget held a request back since the window began. */
  paced: boolean;
  /** When the current window of latency samples began, ms. */
  windowAt: number;
}

export function newKeyState(hash: string, waiting: RequestLanes<Entry>, concurrency: KeyConcurrency): KeyState {
  return { hash, waiting, inFlight: 0, heldInFlight: 0, concurrency, sleeping: false, timer: null, lessons: 0, paced: false, windowAt: 0 };
}

export interface WaitingOptions {
  timers: Scheduler;
  now: () => number;
  /** Longest wait of an urgent request in the queue, ms. */
  maxQueueWaitMs: number;
  onThrottled?: (reason: 'queue_timeout') => void;
  /** Called when a request leaves a key's queue without being sent. */
  forgetIfIdle: (state: KeyState) => void;
}

/** How a waiting request ends without being sent: its caller's signal aborts, or its queue deadline passes. */
export function createWaitingEntry(options: WaitingOptions) {
  const { timers, now, maxQueueWaitMs, onThrottled, forgetIfIdle } = options;

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
    /** Puts a request back in its key's queue (after a 429): at the front of its lane, watched again. */
    wait(state: KeyState, entry: Entry, front: boolean): void {
      entry.settled = false;
      state.waiting.add(entry, front);
      watch(state, entry);
    },
  };
}
