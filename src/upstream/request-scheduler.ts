/**
 * One scheduler for every upstream request of every key. The path of a request:
 *  1. `run(keyHash, send, hints)`: refused at once when the key was answered 401 a moment
 *     ago (`FAIL_FAST_MS`), when its queue is full, or when an urgent request could not go
 *     within `maxQueueWaitMs` at the key's pace.
 *  2. The fast path: a key with nothing waiting, room in flight and a free slot in its budget
 *     sends at once, synchronously. Most polls of a key that keeps up take it; it took the
 *     per-poll CPU of 5,000 watched tasks from 1.8x to 1.5x the bare undici loop
 *     (`npm run bench -- performance polls`).
 *  3. Otherwise it waits in the key's lanes (request-lanes.ts): urgent (queries, submits,
 *     cancels; their wait bounded by `maxQueueWaitMs`), then first reads, then polls, stalest
 *     first; long-held submits (`waitSeconds`) in a lane of their own.
 *  4. `pump` sends the key's next request when three bounds allow: the key's in-flight limit
 *     (key-concurrency.ts: pace × latency, lowered when the latency rises; long-held requests
 *     counted apart, `HELD_PER_KEY` per key and `HELD_SHARE` of the pool), the pool
 *     (`maxInFlight`; keys waiting for room take turns, one request each), and a slot of the
 *     key's budget (key-budget.ts, gcra.ts, redis-budget.ts), waited for on a timer.
 *  5. The answer frees its place and samples the key's latency. A 429 teaches the budget and
 *     the request waits its turn again (at most `MAX_ATTEMPTS` sends); a 401 fails what the
 *     key has waiting. Every `LIMIT_WINDOW_MS` a busy key's limit follows its latency, and its
 *     pace grows if the budget held it back.
 */
import { setMaxListeners } from 'node:events';
import { QueueTimeoutError } from '../errors.ts';
import { realScheduler } from '../lib/scheduler.ts';
import type { Abortable } from '../lib/stop-signal.ts';
import { RateLimitedError, UnauthenticatedError } from './errors.ts';
import { createLocalBudget, KEYS_KEPT } from './key-budget.ts';
import { LIMIT_WINDOW_MS } from './key-concurrency.ts';
import { createKeyStanding } from './key-standing.ts';
import { MAX_IN_FLIGHT, type RequestScheduler, type RequestSchedulerOptions, type ScheduleHints } from './request-scheduling.ts';
import {
  budgetSpentError,
  busiestKeys,
  createWaitingEntry,
  type Entry,
  type KeyState,
  keyRefusedError,
  lessonOf,
  newEntry,
  newKeyState,
  queueFullError,
} from './scheduler-state.ts';

export type { RequestPriority } from './request-lanes.ts';
export type { KeyStats, RequestScheduler, RequestSchedulerOptions, ScheduleHints } from './request-scheduling.ts';

/** How long a key the upstream answered 401 is refused without asking it again, ms. */
export const FAIL_FAST_MS = 30_000;
/** Sends of one request answered 429 before that 429 is the request's answer. */
export const MAX_ATTEMPTS = 3;
/** Long-held requests one key may have in flight. */
export const HELD_PER_KEY = 8;
/** Share of the pool long-held requests may take over all keys: the rest is always there for short ones. */
export const HELD_SHARE = 0.25;
/** A query, submit or cancel answered 429 is sent again only if its key's budget can send it within this, in ms. */
const URGENT_RETRY_WITHIN_MS = 1_000;

export function createRequestScheduler(options: RequestSchedulerOptions = {}): RequestScheduler {
  const {
    maxInFlight = MAX_IN_FLIGHT,
    maxInFlightPerKey = maxInFlight,
    maxQueuedPerKey = 2_000,
    maxQueueWaitMs = 10_000, // 10 s
    timers = realScheduler,
    now = Date.now,
    onSent,
    onThrottled,
    onFailFast,
  } = options;
  const budget = options.budget ?? createLocalBudget({ now });
  const maxHeld = Math.max(1, Math.floor(maxInFlight * HELD_SHARE));
  const keys = new Map<string, KeyState>();
  const standing = createKeyStanding({ failFastMs: FAIL_FAST_MS, maxKeys: KEYS_KEPT, now });
  /** Keys with a request that waits only for room in the pool, in turn order. */
  const blocked = new Set<KeyState>();
  let inFlight = 0;
  let heldInFlight = 0;
  let seq = 0;
  let disposed = false;
  /** Aborts requests in flight without a signal at disposal (AbortSignal.any() per request costs more than a poll's scheduling). */
  const shutdown = new AbortController();
  // Requests in flight without a signal of their own listen to it: up to `maxInFlight`, by design.
  setMaxListeners(maxInFlight, shutdown.signal);
  const entries = createWaitingEntry({ timers, now, maxQueueWaitMs, onThrottled, onFailFast, forgetIfIdle });

  const failFastError = () => keyRefusedError(FAIL_FAST_MS);

  function stateOf(keyHash: string): KeyState {
    let state = keys.get(keyHash);
    if (!state) {
      state = newKeyState(keyHash);
      keys.set(keyHash, state);
    }
    return state;
  }

  /** Counts a request into (+1) or out of (-1) flight, short or long-held. */
  function count(state: KeyState, entry: Entry, delta: 1 | -1): void {
    if (entry.held) {
      state.heldInFlight += delta;
      heldInFlight += delta;
    } else state.inFlight += delta;
    inFlight += delta;
  }

  /**
   * Forgets a key with nothing waiting or in flight, once more than `KEYS_KEPT` keys are known: a busy
   * key goes idle between most of its requests, and building its state each time would cost more.
   */
  function forgetIfIdle(state: KeyState): void {
    if (keys.size <= KEYS_KEPT || state.waiting.size > 0 || state.inFlight + state.heldInFlight > 0 || state.sleeping) return;
    if (keys.get(state.hash) === state) keys.delete(state.hash);
  }

  /** Whether the key has room for one more request of this kind: a key not accepted yet sends one at a time. */
  function hasRoom(state: KeyState, held: boolean): boolean {
    if (!standing.accepted(state.hash)) return state.inFlight + state.heldInFlight === 0;
    if (held) return state.heldInFlight < HELD_PER_KEY && heldInFlight < maxHeld;
    return state.inFlight < Math.min(maxInFlightPerKey, state.concurrency.limit);
  }

  /** The key's next request its bounds allow: a long-held one competes with urgent ones in arrival order. */
  function pick(state: KeyState): Entry | undefined {
    const short = hasRoom(state, false) ? state.waiting.nextShort() : undefined;
    const held = hasRoom(state, true) ? state.waiting.nextHeld() : undefined;
    if (!held) return short;
    return short && short.priority === 'urgent' && short.seq < held.seq ? short : held;
  }

  /** Sends up to `most` of the key's requests, as its bounds and budget allow now; waits on a timer for a slot to come. */
  function pump(state: KeyState, most = Number.POSITIVE_INFINITY): void {
    for (let sent = 0; sent < most && !state.sleeping && !disposed; sent++) {
      if (standing.refused(state.hash)) {
        entries.failAll(state, failFastError);
        return;
      }
      const entry = pick(state);
      if (!entry) break;
      if (inFlight >= maxInFlight) {
        blocked.add(state);
        break;
      }
      if (!budget.reserveNow(state.hash, state.waiting.size)) {
        state.saturated = true;
        sleepUntil(state, budget.nextSlotAt(state.hash));
        return;
      }
      state.waiting.take(entry);
      dispatch(state, entry);
    }
    forgetIfIdle(state);
  }

  /** Waits until the key's budget expects a free slot, then pumps again; a lease that comes sooner wakes it. */
  function sleepUntil(state: KeyState, at: number): void {
    state.sleeping = true;
    state.timer = timers.setTimeout(() => wake(state), at - now());
  }
  function wake(state: KeyState): void {
    timers.clearTimeout(state.timer);
    state.sleeping = false;
    state.timer = null;
    pump(state);
  }
  budget.onSlots?.((keyHash) => {
    const state = keys.get(keyHash);
    if (state?.sleeping && !disposed) wake(state);
  });

  function dispatch(state: KeyState, entry: Entry): void {
    entries.settle(entry);
    count(state, entry, 1);
    const sentAt = now();
    onSent?.(entry.priority, sentAt - entry.queuedAt, entry.priority === 'poll' && entry.lastReadAt > 0 ? sentAt - entry.lastReadAt : null);
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
        if (!entry.held) state.concurrency.sample(now() - sentAt);
        entry.resolve(value);
        ended(state, entry);
      },
      (error: unknown) => {
        if (error instanceof RateLimitedError && error.fromUpstream) {
          throttledByUpstream(state, entry, error);
        } else if (error instanceof UnauthenticatedError) {
          standing.reject(state.hash);
          entry.reject(error);
          entries.failAll(state, failFastError);
        } else entry.reject(error);
        ended(state, entry);
      },
    );
  }

  /** A request ended: its place goes to the next, first to keys waiting for room in the pool, in turn. */
  function ended(state: KeyState, entry: Entry): void {
    count(state, entry, -1);
    const at = now();
    if (at - state.windowAt >= LIMIT_WINDOW_MS) {
      state.windowAt = at;
      // Saturated: requests waited this window (for the budget or for room) and some still wait.
      if (state.saturated && state.waiting.size > 0) budget.learn(state.hash, { kind: 'faster' });
      state.saturated = state.waiting.size > 0;
      state.concurrency.update(budget.rate(state.hash));
    }
    for (let turns = blocked.size; turns > 0 && inFlight < maxInFlight; turns--) {
      const next = blocked.values().next().value as KeyState;
      blocked.delete(next);
      pump(next, 1);
      if (!blocked.has(next) && !next.sleeping && pick(next)) blocked.add(next);
    }
    pump(state);
  }

  /** The upstream answered 429: the budget learns, and the request waits its turn again unless its caller cannot wait. */
  function throttledByUpstream(state: KeyState, entry: Entry, error: RateLimitedError): void {
    budget.learn(state.hash, lessonOf(error, now()));
    // Polls and first reads wait; a caller waiting for an answer gets the 429 unless it can go again soon.
    const soonMs = Math.min(URGENT_RETRY_WITHIN_MS, entry.queuedAt + maxQueueWaitMs - now());
    const patient = entry.priority !== 'urgent' || budget.nextSlotAt(state.hash) - now() <= soonMs;
    if (entry.attempts >= MAX_ATTEMPTS || !patient || entry.signal?.aborted || disposed) {
      entry.reject(error);
      return;
    }
    onThrottled?.('upstream_429');
    // The request was not served: it waits its turn again, at the front of its lane.
    entries.wait(state, entry, true);
  }

  function refuse(state: KeyState, reason: 'queue_full' | 'budget', error: Error): Promise<never> {
    onThrottled?.(reason);
    forgetIfIdle(state);
    return Promise.reject(error);
  }

  return {
    run<T>(keyHash: string, send: (signal: Abortable) => Promise<T>, hints: ScheduleHints & { signal?: Abortable } = {}): Promise<T> {
      const { priority = 'urgent', held = false, signal, onQueued } = hints;
      if (disposed) return Promise.reject(new QueueTimeoutError('The gateway is shutting down.'));
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (standing.refused(keyHash)) {
        onFailFast?.();
        return Promise.reject(failFastError());
      }
      const state = stateOf(keyHash);
      if (state.waiting.size >= maxQueuedPerKey) return refuse(state, 'queue_full', queueFullError(maxQueuedPerKey));
      if (priority === 'urgent') {
        const waiting = held ? state.waiting.held : state.waiting.urgent;
        const expectedMs = Math.max(0, budget.nextSlotAt(keyHash) - now()) + (waiting * 1_000) / budget.rate(keyHash);
        if (expectedMs > maxQueueWaitMs) return refuse(state, 'budget', budgetSpentError(expectedMs));
      }
      return new Promise<T>((resolve, reject) => {
        const entry = newEntry(send, resolve as Entry['resolve'], reject, hints, seq++, now());
        // The fast path (see the top of this file): nothing of the key waits, and it may send now.
        if (!disposed && !state.sleeping && state.waiting.size === 0 && blocked.size === 0 && inFlight < maxInFlight) {
          if (hasRoom(state, held) && budget.reserveNow(keyHash)) return dispatch(state, entry);
        }
        state.waiting.add(entry);
        pump(state);
        // Sent at once, or refused: nothing more. Else it waits: its caller's signal and its deadline now count.
        if (entry.attempts > 0 || entry.settled) return;
        entries.watch(state, entry);
        onQueued?.(() => state.waiting.promote(entry));
      });
    },

    stats() {
      let waiting = 0;
      for (const state of keys.values()) waiting += state.waiting.size;
      return { queued: waiting, inFlight, keys: keys.size };
    },
    accepted: (keyHash) => standing.accepted(keyHash),

    busiest: (count) =>
      busiestKeys(keys.values(), count, (state) => ({
        limit: Math.min(maxInFlightPerKey, state.concurrency.limit),
        ratePerSec: budget.rate(state.hash),
        latencyMs: state.concurrency.latencyMs,
      })),

    dispose() {
      disposed = true;
      for (const state of keys.values()) {
        timers.clearTimeout(state.timer);
        entries.failAll(state, () => new QueueTimeoutError('The gateway is shutting down.'), false);
      }
      blocked.clear();
      shutdown.abort(new QueueTimeoutError('The gateway is shutting down.'));
    },
  };
}
