import type { Scheduler } from '../lib/scheduler.ts';
import type { KeyBudget } from './key-budget.ts';
import type { RequestPriority } from './request-lanes.ts';

/**
 * The contract of the per-key request scheduler (`request-scheduler.ts`): how a
 * request asks to be scheduled, the scheduler's options with their defaults,
 * and what it offers.
 */

/** Requests in flight over all keys, and so the connections of the client's pool: a sent request never waits for one. */
export const MAX_IN_FLIGHT = 128;

/** How a request wants to be scheduled; the plain client ignores these. */
export interface ScheduleHints {
  /** Default `urgent`. */
  priority?: RequestPriority;
  /** When the task was last read (ms, by the scheduler's clock; 0: never). Polls read longest ago go first. */
  lastReadAt?: number;
  /**
   * Handed, while the request waits, a function that moves it ahead of every poll (a new watcher
   * waits for it); that function answers false once the request has been sent.
   */
  onQueued?: (promote: () => boolean) => void;
}

export interface RequestSchedulerOptions {
  /** The pace of each key. Default: a per-process `createLocalBudget()`. */
  budget?: KeyBudget;
  /** Requests of one key in flight at once (`MAX_UPSTREAM_IN_FLIGHT_PER_KEY`). Default 8. */
  maxInFlightPerKey?: number;
  /** Requests in flight over all keys; keep the client's pool at least this large. Default `MAX_IN_FLIGHT` (128). */
  maxInFlight?: number;
  /** Requests of one key waiting; past it a request is refused with `RATE_LIMITED`. Default 2 000. */
  maxQueuedPerKey?: number;
  /** Longest wait in the queue of an `urgent` request before it fails with `TIMEOUT` unsent. Default 10 000 ms. */
  maxQueueWaitMs?: number;
  /** How long a key the upstream answered 401 is refused without asking it again. Default 30 000 ms. */
  failFastMs?: number;
  /** Sends of one request that the upstream answered 429 before that 429 is the request's answer. Default 3. */
  maxAttempts?: number;
  /** Key hashes remembered as accepted or rejected by the upstream. Default 10 000. */
  maxKeys?: number;
  scheduler?: Scheduler;
  now?: () => number;
  /** Told of each request sent: its priority, ms it waited here, and for polls ms since the task's last read. */
  onSent?: (priority: RequestPriority, waitedMs: number, sinceLastReadMs: number | null) => void;
  /** Told of each request held back: `upstream_429` (answered 429, sent again later), `queue_full`, `budget`, `queue_timeout`. */
  onThrottled?: (reason: 'upstream_429' | 'queue_full' | 'budget' | 'queue_timeout') => void;
  /** Told of each request refused at once because its key was answered 401 a moment ago. */
  onFailFast?: () => void;
}

export interface RequestScheduler {
  /** Runs `send` when the key's budget, its in-flight bound and the priorities allow; settles with its outcome. */
  run<T>(keyHash: string, send: (signal: AbortSignal) => Promise<T>, hints?: ScheduleHints & { signal?: AbortSignal }): Promise<T>;
  stats(): { queued: number; inFlight: number; keys: number };
  /** Fails every waiting request, aborts those in flight, and stops every timer. */
  dispose(): void;
}
