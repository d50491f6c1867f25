/**
 * One scheduler for every upstream request of every key. The path of a request:
 *
 *  1. `run(keyHash, send, hints)`: refused at once when the key was answered 401
 *     a moment ago (`FAIL_FAST_MS`), when its queue is full, or when an urgent
 *     request could not go within `maxQueueWaitMs` at the key's pace.
 *  2. The fast path: a key with nothing waiting, room in flight and a free slot
 *     in its budget sends at once, synchronously. Most polls of a key that keeps
 *     up take it; it halved the per-poll CPU of 5,000 watched tasks (1.8x to
 *     1.5x the bare undici loop, `npm run bench -- performance polls`).
 *  3. Otherwise it waits in the key's lanes (request-lanes.ts): urgent (queries,
 *     submits, cancels; their wait bounded by `maxQueueWaitMs`), then first reads,
 *     then polls, stalest first; long-held submits (`waitSeconds`) in a lane of
 *     their own.
 *  4. `pump` sends the key's next request when three bounds allow it: the key's
 *     in-flight limit (key-concurrency.ts: its pace × its latency, lowered when
 *     the latency rises; long-held requests are counted apart, `HELD_PER_KEY`
 *     per key and `HELD_SHARE` of the pool), the pool (`maxInFlight`: keys
 *     waiting for room take turns, one request each, round robin), and a slot of
 *     the key's budget (key-budget.ts, gcra.ts; Redis: redis-budget.ts), waited
 *     for on a timer when it has not come.
 *  5. The answer: it frees its place and samples the key's latency. A 429 teaches
 *     the budget and the request waits its turn again (up to `MAX_ATTEMPTS`
 *     sends); a 401 fails everything the key has waiting. Every
 *     `LIMIT_WINDOW_MS` a busy key's limit follows its latency, and its pace
 *     grows when the budget held it back.
 */
import { realScheduler } from '../lib/scheduler.ts';
import { QueueTimeoutError, RateLimitedError, UnauthenticatedError } from './errors.ts';
import { createLocalBudget, KEYS_KEPT } from './key-budget.ts';
import { createKeyConcurrency, LIMIT_WINDOW_MS } from './key-concurrency.ts';
import { createKeyStanding } from './key-standing.ts';
import { createRequestLanes } from './request-lanes.ts';
import type { KeyStats, RequestScheduler, RequestSchedulerOptions, ScheduleHints } from './request-scheduling.ts';
import { createWaitingEntry, type Entry, type KeyState, newKeyState } from './scheduled-entry.ts';

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
    maxInFlight = 512,
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
  /**
   * Aborts every request in flight that came without a signal of its own when the scheduler is
   * disposed. One with a signal is its owner's to abort (a poll loop stops before; a waiting submit
   * follows the gateway's stopping signal): combining the two with AbortSignal.any() on every
   * request would cost more than the rest of a poll's scheduling.
   */
  const shutdown = new AbortController();
  const entries = createWaitingEntry({ timers, now, maxQueueWaitMs, onThrottled, forgetIfIdle });

  const failFastError = () =>
    new UnauthenticatedError(
      `The upstream rejected this API key; it is refused here for ${FAIL_FAST_MS / 1_000} s without asking the upstream again.`,
    );

  function stateOf(keyHash: string): KeyState {
    let state = keys.get(keyHash);
    if (!state) {
      state = newKeyState(keyHash, createRequestLanes<Entry>(), createKeyConcurrency());
      keys.set(keyHash, state);
    }
    return state;
  }

  /**
   * Forgets a key with nothing waiting or in flight, once more than `KEYS_KEPT` keys are known:
   * a busy key goes idle between most of its requests, and building its state again each time would
   * cost more than keeping it.
   */
  function forgetIfIdle(state: KeyState): void {
    if (keys.size <= KEYS_KEPT || state.waiting.size > 0 || state.inFlight + state.heldInFlight > 0 || state.sleeping) return;
    if (keys.get(state.hash) === state) keys.delete(state.hash);
  }

  function failQueued(state: KeyState, error: () => Error, failingFast = true): void {
    for (const entry of state.waiting.drain()) {
      entries.settle(entry);
      if (failingFast) onFailFast?.();
      entry.reject(error());
    }
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

  /** Sends up to `count` of the key's requests, as its bounds and budget allow now; waits on a timer for a slot to come. */
  function pump(state: KeyState, count = Number.POSITIVE_INFINITY): void {
    for (let sent = 0; sent < count && !state.sleeping && !disposed; sent++) {
      if (standing.refused(state.hash)) return failQueued(state, failFastError);
      const entry = pick(state);
      if (!entry) break;
      if (inFlight >= maxInFlight) {
        blocked.add(state);
        break;
      }
      const slot = budget.reserve(state.hash);
      if (slot > now()) {
        state.paced = true;
        sleepUntil(state, slot, state.lessons);
        return;
      }
      state.waiting.take(entry);
      dispatch(state, entry);
    }
    forgetIfIdle(state);
  }

  /** Waits for a reserved slot, then sends the key's best request then (unless a 429 came meanwhile), and pumps on. */
  function sleepUntil(state: KeyState, slot: number, lessons: number): void {
    state.sleeping = true;
    state.timer = timers.setTimeout(() => {
      state.sleeping = false;
      state.timer = null;
      // A 429 arrived meanwhile: the slot predates the pause it set; the next round takes a new one.
      const entry = disposed || state.lessons !== lessons ? undefined : pick(state);
      if (entry && inFlight < maxInFlight) {
        state.waiting.take(entry);
        dispatch(state, entry);
      }
      pump(state);
    }, slot - now());
  }

  function dispatch(state: KeyState, entry: Entry): void {
    entries.settle(entry);
    if (entry.held) {
      state.heldInFlight += 1;
      heldInFlight += 1;
    } else state.inFlight += 1;
    inFlight += 1;
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
          failQueued(state, failFastError);
        } else entry.reject(error);
        ended(state, entry);
      },
    );
  }

  /** A request ended: its place goes to the next, first to keys waiting for room in the pool, in turn. */
  function ended(state: KeyState, entry: Entry): void {
    if (entry.held) {
      state.heldInFlight -= 1;
      heldInFlight -= 1;
    } else state.inFlight -= 1;
    inFlight -= 1;
    const at = now();
    if (at - state.windowAt >= LIMIT_WINDOW_MS) {
      state.windowAt = at;
      // Saturated: the budget held requests back this window and some still wait.
      if (state.paced && state.waiting.size > 0) budget.learn(state.hash, { kind: 'faster' });
      state.paced = false;
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
    state.lessons += 1;
    const resumeAt = error.retryAfterMs === null ? null : now() + error.retryAfterMs;
    budget.learn(
      state.hash,
      error.quota
        ? { kind: 'quota', ratePerSec: (error.quota.cap * 1_000) / error.quota.windowMs, resumeAt }
        : { kind: 'slower', resumeAt },
    );
    // Polls and first reads wait; a caller waiting for an answer gets the 429 unless it can go again soon.
    const soonMs = Math.min(URGENT_RETRY_WITHIN_MS, entry.queuedAt + maxQueueWaitMs - now());
    const patient = entry.priority !== 'urgent' || budget.nextSlotAt(state.hash) - now() <= soonMs;
    if (entry.attempts >= MAX_ATTEMPTS || !patient || entry.signal?.aborted || disposed) return entry.reject(error);
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
    run<T>(keyHash: string, send: (signal: AbortSignal) => Promise<T>, hints: ScheduleHints & { signal?: AbortSignal } = {}): Promise<T> {
      const { priority = 'urgent', held = false, lastReadAt = 0, signal, onQueued } = hints;
      if (disposed) return Promise.reject(new QueueTimeoutError('The gateway is shutting down.'));
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (standing.refused(keyHash)) {
        onFailFast?.();
        return Promise.reject(failFastError());
      }
      const state = stateOf(keyHash);
      if (state.waiting.size >= maxQueuedPerKey) {
        const message = `This API key already has ${maxQueuedPerKey} upstream requests waiting in the gateway; retry later.`;
        return refuse(state, 'queue_full', new RateLimitedError(message, null, null, false));
      }
      if (priority === 'urgent') {
        const waiting = held ? state.waiting.held : state.waiting.urgent;
        const expectedMs = Math.max(0, budget.nextSlotAt(keyHash) - now()) + (waiting * 1_000) / budget.rate(keyHash);
        if (expectedMs > maxQueueWaitMs) {
          const message = `The upstream budget of this API key is spent for now: the request would wait about ${Math.ceil(expectedMs / 1000)} s in the gateway before it could be sent.`;
          return refuse(state, 'budget', new RateLimitedError(message, Math.ceil(expectedMs), null, false));
        }
      }
      return new Promise<T>((resolve, reject) => {
        const entry: Entry = {
          send,
          resolve: resolve as (value: unknown) => void,
          reject,
          priority,
          held,
          lastReadAt,
          seq: seq++,
          queuedAt: now(),
          attempts: 0,
          timer: null,
          signal,
          onAbort: undefined,
          settled: false,
        };
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

    busiest(count) {
      const busy: KeyState[] = [];
      for (const state of keys.values()) if (state.inFlight + state.heldInFlight + state.waiting.size > 0) busy.push(state);
      const load = (state: KeyState) => state.inFlight + state.heldInFlight + state.waiting.size;
      return busy
        .sort((a, b) => load(b) - load(a))
        .slice(0, count)
        .map(
          (state): KeyStats => ({
            key: state.hash.slice(0, 8),
            limit: Math.min(maxInFlightPerKey, state.concurrency.limit),
            ratePerSec: budget.rate(state.hash),
            latencyMs: state.concurrency.latencyMs,
            inFlight: state.inFlight + state.heldInFlight,
            queued: state.waiting.size,
          }),
        );
    },

    dispose() {
      disposed = true;
      for (const state of keys.values()) {
        timers.clearTimeout(state.timer);
        failQueued(state, () => new QueueTimeoutError('The gateway is shutting down.'), false);
      }
      blocked.clear();
      shutdown.abort(new QueueTimeoutError('The gateway is shutting down.'));
    },
  };
}
