import { setMaxListeners } from 'node:events';
import { QueueTimeoutError } from '../errors.ts';
import { realScheduler } from '../lib/scheduler.ts';
import { RateLimitedError, UnauthenticatedError } from './errors.ts';
import { createLocalBudget } from './key-budget.ts';
import { createKeyStanding } from './key-standing.ts';
import { createRequestLanes, type RequestLanes, type RequestPriority } from './request-lanes.ts';
import { MAX_IN_FLIGHT, type RequestScheduler, type RequestSchedulerOptions, type ScheduleHints } from './request-scheduling.ts';

export type { RequestPriority } from './request-lanes.ts';

export type { RequestScheduler, RequestSchedulerOptions, ScheduleHints } from './request-scheduling.ts';

/** Keys whose state is kept while idle; past this many known keys, an idle key is forgotten. */
const IDLE_KEYS_KEPT = 1_000;

/** A query, submit or cancel answered 429 is sent again only if its key's budget can send it within this, in ms. */
const URGENT_RETRY_WITHIN_MS = 1_000;

interface Entry {
  send: (signal: AbortSignal) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  priority: RequestPriority;
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

interface KeyState {
  hash: string;
  waiting: RequestLanes<Entry>;
  inFlight: number;
  pumping: boolean;
  /** Lessons learned so far: a slot reserved before the latest one is not used. */
  lessons: number;
  lastFasterAt: number;
  wake: (() => void) | null;
  timer: unknown;
}

/**
 * One scheduler for every upstream request of every key: per key, a budget
 * (the pace), a bound on requests in flight, and its lanes of waiting requests
 * (request-lanes.ts). A 429 teaches the budget and the request waits its
 * turn again; a 401 makes the key fail fast for `failFastMs`. A key the upstream
 * has not accepted yet sends one request at a time, so a burst with a bad key
 * costs one upstream request.
 */
export function createRequestScheduler(options: RequestSchedulerOptions = {}): RequestScheduler {
  const {
    maxInFlightPerKey = 8,
    maxInFlight = MAX_IN_FLIGHT,
    maxQueuedPerKey = 2_000,
    maxQueueWaitMs = 10_000, // 10 s
    failFastMs = 30_000, // 30 s
    maxAttempts = 3,
    maxKeys = 10_000,
    scheduler = realScheduler,
    now = Date.now,
    onSent,
    onThrottled,
    onFailFast,
  } = options;
  const budget = options.budget ?? createLocalBudget({ now });
  const keys = new Map<string, KeyState>();
  const standing = createKeyStanding({ failFastMs, maxKeys, now });
  /** Keys waiting for a free slot under `maxInFlight`. */
  const blocked = new Set<KeyState>();
  let inFlight = 0;
  let seq = 0;
  let disposed = false;
  /**
   * Aborts every request in flight that came without a signal of its own when the scheduler is
   * disposed. One with a signal is its owner's to abort (a poll loop stops before; a waiting submit
   * follows the gateway's stopping signal): combining the two with AbortSignal.any() on every
   * request would cost more than the rest of a poll's scheduling.
   */
  const shutdown = new AbortController();
  // Each request in flight without a signal of its own listens to this one: up to `maxInFlight` at once, by design.
  setMaxListeners(maxInFlight, shutdown.signal);

  const queued = (state: KeyState) => state.waiting.size;

  const failFastError = () =>
    new UnauthenticatedError(
      `The upstream rejected this API key; it is refused here for ${Math.round(failFastMs / 1000)} s without asking the upstream again.`,
    );

  function stateOf(keyHash: string): KeyState {
    let state = keys.get(keyHash);
    if (!state) {
      state = {
        hash: keyHash,
        waiting: createRequestLanes<Entry>(),
        inFlight: 0,
        pumping: false,
        lessons: 0,
        lastFasterAt: 0,
        wake: null,
        timer: null,
      };
      keys.set(keyHash, state);
    }
    return state;
  }

  /**
   * Forgets a key with nothing waiting or in flight, once more than `IDLE_KEYS_KEPT` keys are known:
   * a busy key goes idle between most of its requests, and building its state again each time would
   * cost more than keeping it.
   */
  function forgetIfIdle(state: KeyState): void {
    if (keys.size <= IDLE_KEYS_KEPT) return;
    if (queued(state) === 0 && state.inFlight === 0 && !state.pumping && keys.get(state.hash) === state) keys.delete(state.hash);
  }

  function settle(entry: Entry): void {
    entry.settled = true;
    scheduler.clearTimeout(entry.timer);
    entry.timer = null;
    if (entry.onAbort) entry.signal?.removeEventListener('abort', entry.onAbort);
    entry.onAbort = undefined;
  }

  function armQueueTimer(state: KeyState, entry: Entry): void {
    if (entry.priority !== 'urgent') return;
    const leftMs = entry.queuedAt + maxQueueWaitMs - now();
    entry.timer = scheduler.setTimeout(
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
      Math.max(0, leftMs),
    );
  }

  function failQueued(state: KeyState, error: () => Error, failingFast = true): void {
    for (const entry of state.waiting.drain()) {
      settle(entry);
      if (failingFast) onFailFast?.();
      entry.reject(error());
    }
  }

  const boundOf = (state: KeyState) => (standing.accepted(state.hash) ? maxInFlightPerKey : 1);

  /**
   * Sends what the key's bounds and budget allow now. Synchronous while the budget answers at once
   * with a slot that has come (a local budget, most of the time): a poll then costs no promise here.
   */
  function pump(state: KeyState): void {
    if (state.pumping || disposed) return;
    while (queued(state) > 0) {
      if (standing.refused(state.hash)) {
        failQueued(state, failFastError);
        break;
      }
      if (state.inFlight >= boundOf(state)) break;
      if (inFlight >= maxInFlight) {
        blocked.add(state);
        break;
      }
      const lessons = state.lessons;
      let slot: number | Promise<number>;
      try {
        slot = budget.reserve(state.hash);
      } catch {
        slot = now();
      }
      if (typeof slot !== 'number' || slot > now()) {
        state.pumping = true;
        void waitForSlot(state, slot, lessons);
        return;
      }
      dispatch(state, state.waiting.take()!);
    }
    forgetIfIdle(state);
  }

  /** Whether a request of the key may go now, ahead of nothing: the slot is then taken. */
  function sendsNow(state: KeyState): boolean {
    return (
      !disposed &&
      !state.pumping &&
      queued(state) === 0 &&
      state.inFlight < boundOf(state) &&
      inFlight < maxInFlight &&
      !standing.refused(state.hash) &&
      budget.reserveNow?.(state.hash) === true
    );
  }

  /** Waits for a slot Redis has yet to give, or one still to come, then sends the next request and pumps on. */
  async function waitForSlot(state: KeyState, reserved: Promise<number> | number, lessons: number): Promise<void> {
    try {
      let slot: number;
      try {
        slot = await reserved;
      } catch {
        slot = now();
      }
      const waitMs = slot - now();
      if (waitMs > 0) await sleep(state, waitMs);
      // A 429 arrived meanwhile: the slot predates the pause it set; the next round takes a new one.
      const entry = disposed || state.lessons !== lessons ? undefined : state.waiting.take();
      if (entry) dispatch(state, entry);
    } finally {
      state.pumping = false;
    }
    pump(state);
  }

  function sleep(state: KeyState, ms: number): Promise<void> {
    return new Promise((resolve) => {
      state.wake = () => {
        state.wake = null;
        state.timer = null;
        resolve();
      };
      state.timer = scheduler.setTimeout(() => state.wake?.(), ms);
    });
  }

  function dispatch(state: KeyState, entry: Entry): void {
    settle(entry);
    state.inFlight += 1;
    inFlight += 1;
    const at = now();
    onSent?.(entry.priority, at - entry.queuedAt, entry.priority === 'poll' && entry.lastReadAt > 0 ? at - entry.lastReadAt : null);
    entry.attempts += 1;
    let sending: Promise<unknown>;
    try {
      sending = entry.send(entry.signal ?? shutdown.signal);
    } catch (error) {
      // A send that throws instead of rejecting still ends, and frees its place.
      sending = Promise.reject(error);
    }
    sending.then(
      (value) => {
        standing.accept(state.hash);
        if (queued(state) > 0 && now() - state.lastFasterAt >= 1_000) {
          state.lastFasterAt = now();
          void budget.learn(state.hash, { kind: 'faster' });
        }
        entry.resolve(value);
        sent(state);
      },
      (error: unknown) => {
        if (!(error instanceof RateLimitedError && error.fromUpstream)) {
          if (error instanceof UnauthenticatedError) {
            standing.reject(state.hash);
            entry.reject(error);
            failQueued(state, failFastError);
          } else entry.reject(error);
          return sent(state);
        }
        void throttledByUpstream(state, entry, error).finally(() => sent(state));
      },
    );
  }

  /** A request of the key ended: its place in flight goes to the next, of this key or of one waiting for room. */
  function sent(state: KeyState): void {
    state.inFlight -= 1;
    inFlight -= 1;
    // Keys that waited for room go first, in the order they began to wait: a key that keeps the
    // total bound full cannot take every place it frees.
    for (const waiting of blocked) {
      if (inFlight >= maxInFlight) break;
      blocked.delete(waiting);
      pump(waiting);
    }
    pump(state);
    forgetIfIdle(state);
  }

  /** The upstream answered 429: the budget learns, and the request waits its turn again unless its caller cannot wait. */
  async function throttledByUpstream(state: KeyState, entry: Entry, error: RateLimitedError): Promise<void> {
    state.lessons += 1;
    const resumeAt = error.retryAfterMs === null ? null : now() + error.retryAfterMs;
    try {
      await budget.learn(
        state.hash,
        error.quota
          ? { kind: 'quota', ratePerSec: (error.quota.cap * 1_000) / error.quota.windowMs, resumeAt }
          : { kind: 'slower', resumeAt },
      );
    } catch {
      // The budget keeps its own fallback; the pause is best effort.
    }
    // Polls and first reads wait; a caller waiting for an answer gets the 429 unless it can go again soon.
    const soonMs = Math.min(URGENT_RETRY_WITHIN_MS, entry.queuedAt + maxQueueWaitMs - now());
    const patient = entry.priority !== 'urgent' || budget.peek(state.hash).nextSlotAt - now() <= soonMs;
    if (entry.attempts >= maxAttempts || !patient || entry.signal?.aborted || disposed) return entry.reject(error);
    onThrottled?.('upstream_429');
    // The request was not served: it waits its turn again, at the front of its lane.
    entry.settled = false;
    state.waiting.add(entry, true);
    watch(state, entry);
    armQueueTimer(state, entry);
  }

  /** A waiting request whose signal aborts leaves the queue at once, rejected with the signal's reason. */
  function watch(state: KeyState, entry: Entry): void {
    if (!entry.signal) return;
    entry.onAbort = () => {
      if (!state.waiting.remove(entry)) return;
      settle(entry);
      entry.reject(entry.signal!.reason);
      forgetIfIdle(state);
    };
    entry.signal.addEventListener('abort', entry.onAbort, { once: true });
  }

  return {
    run<T>(keyHash: string, send: (signal: AbortSignal) => Promise<T>, hints: ScheduleHints & { signal?: AbortSignal } = {}): Promise<T> {
      const { priority = 'urgent', lastReadAt = 0, signal, onQueued } = hints;
      if (disposed) return Promise.reject(new QueueTimeoutError('The gateway is shutting down.'));
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (standing.refused(keyHash)) {
        onFailFast?.();
        return Promise.reject(failFastError());
      }
      const state = stateOf(keyHash);
      if (queued(state) >= maxQueuedPerKey) {
        onThrottled?.('queue_full');
        forgetIfIdle(state);
        return Promise.reject(
          new RateLimitedError(
            `This API key already has ${maxQueuedPerKey} upstream requests waiting in the gateway; retry later.`,
            null,
            null,
            false,
          ),
        );
      }
      if (priority === 'urgent') {
        const { ratePerSec, nextSlotAt } = budget.peek(keyHash);
        const expectedMs = Math.max(0, nextSlotAt - now()) + (state.waiting.urgent * 1_000) / ratePerSec;
        if (expectedMs > maxQueueWaitMs) {
          onThrottled?.('budget');
          forgetIfIdle(state);
          return Promise.reject(
            new RateLimitedError(
              `The upstream budget of this API key is spent for now: the request would wait about ${Math.ceil(expectedMs / 1000)} s in the gateway before it could be sent.`,
              Math.ceil(expectedMs),
              null,
              false,
            ),
          );
        }
      }
      return new Promise<T>((resolve, reject) => {
        const entry: Entry = {
          send,
          resolve: resolve as (value: unknown) => void,
          reject,
          priority,
          lastReadAt,
          seq: seq++,
          queuedAt: now(),
          attempts: 0,
          timer: null,
          signal,
          onAbort: undefined,
          settled: false,
        };
        // The common case: nothing of the key waits and it may send now; the request goes at once.
        if (sendsNow(state)) return dispatch(state, entry);
        state.waiting.add(entry);
        pump(state);
        // Sent at once, or refused: nothing more. Else it waits: its caller's signal and its deadline now count.
        if (entry.attempts > 0 || entry.settled) return;
        watch(state, entry);
        armQueueTimer(state, entry);
        onQueued?.(() => state.waiting.promote(entry));
      });
    },

    stats() {
      let waiting = 0;
      for (const state of keys.values()) waiting += queued(state);
      return { queued: waiting, inFlight, keys: keys.size };
    },

    dispose() {
      disposed = true;
      for (const state of keys.values()) {
        scheduler.clearTimeout(state.timer);
        failQueued(state, () => new QueueTimeoutError('The gateway is shutting down.'), false);
        state.wake?.();
      }
      blocked.clear();
      shutdown.abort(new QueueTimeoutError('The gateway is shutting down.'));
    },
  };
}
