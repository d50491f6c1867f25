import type { Scheduler } from '../lib/scheduler.ts';
import type { Abortable } from '../lib/stop-signal.ts';
import type { KeyBudget } from './key-budget.ts';
import type { RequestPriority } from './request-lanes.ts';

/**
 * The contract of the per-key request scheduler (`request-scheduler.ts`): how a
 * request asks to be scheduled, the scheduler's options with their defaults,
 * and what it offers.
 */

/** Requests in flight over all keys, and so the connections of the client's pool: a sent request never waits for one. */
export const MAX_IN_FLIGHT = 512;

/** How a request wants to be scheduled; the plain client ignores these. */
export interface ScheduleHints {
  /** Default `urgent`. */
  priority?: RequestPriority;
  /** The upstream holds it long (a submit with `waitSeconds`): counted apart from short requests. Default false. */
  held?: boolean;
  /** When the task was last read (ms, by the scheduler's clock; 0: never). Polls read longest ago go first. */
  lastReadAt?: number;
  /**
   * Handed, while the request waits, a function that moves it ahead of every poll (a new watcher
   * waits for it); that function answers false once the request has been sent.
   */
  onQueued?: (promote: () => boolean) => void;
  /**
   * The trace context the request is made for, when it is not the active one: a poll loop's is
   * the operation that started the loop. Opaque here; tracing reads it (`src/telemetry`).
   */
  trace?: unknown;
}

export interface RequestSchedulerOptions {
  /** The pace of each key. Default: a per-process `createLocalBudget()`. */
  budget?: KeyBudget;
  /** Requests in flight over all keys (`MAX_UPSTREAM_IN_FLIGHT`); keep the client's pool at least this large. Default `MAX_IN_FLIGHT` (512). */
  maxInFlight?: number;
  /** An upper bound on one key's short requests in flight (`MAX_UPSTREAM_IN_FLIGHT_PER_KEY`). Default: `maxInFlight`. */
  maxInFlightPerKey?: number;
  /** Requests of one key waiting; past it a request is refused with `RATE_LIMITED`. Default 2 000. */
  maxQueuedPerKey?: number;
  /** Longest wait in the queue of an `urgent` request before it fails with `TIMEOUT` unsent. Default 10 000 ms. */
  maxQueueWaitMs?: number;
  /** Timers for pacing and queue deadlines. Default: Node's. */
  timers?: Scheduler;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Told of each request sent: its priority, ms it waited here, and for polls ms since the task's last read. */
  onSent?: (priority: RequestPriority, waitedMs: number, sinceLastReadMs: number | null) => void;
  /** Told of each request held back: `upstream_429` (answered 429, sent again later), `queue_full`, `budget`, `queue_timeout`. */
  onThrottled?: (reason: 'upstream_429' | 'queue_full' | 'budget' | 'queue_timeout') => void;
  /** Told of each request refused at once because its key was answered 401 a moment ago. */
  onFailFast?: () => void;
}

/** What the scheduler knows of one busy key, for metrics: the key appears only as a prefix of its hash. */
export interface KeyStats {
  /** The first 8 hex digits of the key's hash. */
  key: string;
  /** Short requests the key may have in flight now. */
  limit: number;
  /** Its pace, requests/s. */
  ratePerSec: number;
  /** Average upstream latency of its short requests, ms (0: none answered yet). */
  latencyMs: number;
  inFlight: number;
  queued: number;
}

export interface RequestScheduler {
  /** Runs `send` when the key's budget, its in-flight bounds and the priorities allow; settles with its outcome. */
  run<T>(keyHash: string, send: (signal: Abortable) => Promise<T>, hints?: ScheduleHints & { signal?: Abortable }): Promise<T>;
  stats(): { queued: number; inFlight: number; keys: number };
  /** Whether the upstream has accepted the key (answered one of its requests with anything but 401). */
  accepted(keyHash: string): boolean;
  /** The busiest keys (most in flight and waiting), at most `count`. */
  busiest(count: number): KeyStats[];
  /** Fails every waiting request, aborts those in flight, and stops every timer. */
  dispose(): void;
}
