/**
 * The upstream budget of each key: a pace (GCRA: one "theoretical arrival
 * time" per key, each request reserving the next slot `intervalMs` after the
 * previous one) learned from what the upstream says:
 *  - a quota 429 with `cap` per `window` sets the pace to `headroom` of it for good
 *    (the learned cap is also the ceiling from then on);
 *  - `reset_at` or `Retry-After` pauses the key until then; afterwards the slots
 *    resume one by one at the pace, so the key's loops never retry together;
 *  - a 429 that says nothing halves the pace (at most once per `decreaseHoldMs`);
 *  - while the key is saturated and answered, the pace grows by `increasePerSec` each second.
 * Keys are known by their hash only. The same rules run in Redis (redis-budget.ts) for a fleet.
 */
export type BudgetLesson =
  /** A quota 429 gave `cap` per window: `ratePerSec` is cap / window. `resumeAt` (ms): its reset, if given. */
  | { kind: 'quota'; ratePerSec: number; resumeAt: number | null }
  /** A 429 without cap: slow down; pause until `resumeAt` (ms) when it said. */
  | { kind: 'slower'; resumeAt: number | null }
  /** Answered while the key had more waiting: speed up a little. */
  | { kind: 'faster' };

export interface KeyBudget {
  /** Reserves the key's next send slot: the instant (ms, by the budget's clock) at which one request may go. */
  reserve(keyHash: string): number | Promise<number>;
  /**
   * Takes the key's slot only if one is free now, at once: true when taken. A budget that cannot
   * answer at once (Redis) has none; its requests go through `reserve`.
   */
  reserveNow?(keyHash: string): boolean;
  /** Applies what an answer taught. */
  learn(keyHash: string, lesson: BudgetLesson): void | Promise<void>;
  /** What this process knows of the key: its pace (requests/s) and its next free slot (ms). */
  peek(keyHash: string): { ratePerSec: number; nextSlotAt: number };
  /** Connects what the budget needs (Redis); nothing connects before. */
  start(): void;
  /** Releases what the budget holds (a Redis connection). */
  dispose(): Promise<void>;
}

export interface BudgetRules {
  /** Pace of a key nothing is known about yet, requests/s. Default 50 (what comparable APIs allow). */
  initialRatePerSec?: number;
  /** Highest pace ever used, requests/s (`UPSTREAM_RATE_LIMIT_PER_KEY` when set). Default 1 000. */
  maxRatePerSec?: number;
  /** Lowest pace a run of bare 429s can push a key to, requests/s. Default 0.5. */
  minRatePerSec?: number;
  /** Share of a learned cap that is used, leaving room for clock skew and latency jitter. Default 0.95. */
  headroom?: number;
  /** Pace factor after a 429 that gave no cap. Default 0.5. */
  decrease?: number;
  /** Pace added per second while a key is saturated, requests/s. Default 1. */
  increasePerSec?: number;
  /** At most one decrease per this many ms (a burst of 429s in flight together is one signal). Default 1 000 ms. */
  decreaseHoldMs?: number;
  /**
   * How far ahead of the pace a key that was never answered 429 may run, in ms of its interval
   * (GCRA's tolerance: at 50/s, 200 ms lets 11 requests go at once). Any 429 sets it to 0: paced
   * strictly, so that a burst cannot overrun a fixed quota window. Default 200 ms.
   */
  burstMs?: number;
}

/** One key's budget, as stored (in memory or in a Redis hash). */
export interface BudgetState {
  /** Theoretical arrival time: the next free slot, ms. */
  tat: number;
  /** Current pace, ms between requests. */
  intervalMs: number;
  /** Shortest allowed interval (ms): the configured rate, or a learned cap. */
  floorMs: number;
  /** When the pace was last halved, ms. */
  lastDecreaseAt: number;
  /** GCRA tolerance: how far ahead of the pace a request may go, ms. */
  burstMs: number;
}

export type ResolvedRules = Required<BudgetRules>;

export function resolveRules(rules: BudgetRules = {}): ResolvedRules {
  const {
    initialRatePerSec = 50, // requests/s
    maxRatePerSec = 1_000, // requests/s
    minRatePerSec = 0.5, // requests/s
    headroom = 0.95,
    decrease = 0.5,
    increasePerSec = 1, // requests/s per second
    decreaseHoldMs = 1_000, // 1 s
    burstMs = 200, // 0.2 s
  } = rules;
  return {
    initialRatePerSec: Math.min(initialRatePerSec, maxRatePerSec),
    maxRatePerSec,
    minRatePerSec,
    headroom,
    decrease,
    increasePerSec,
    decreaseHoldMs,
    burstMs,
  };
}

/** A key nothing is known about. */
export function freshState(rules: ResolvedRules): BudgetState {
  return {
    tat: 0,
    intervalMs: 1_000 / rules.initialRatePerSec,
    floorMs: 1_000 / rules.maxRatePerSec,
    lastDecreaseAt: 0,
    burstMs: rules.burstMs,
  };
}

/** Takes the next slot: now if the key is idle (or within its burst), else one interval after the last one reserved. */
export function reserveSlot(state: BudgetState, now: number): number {
  const slot = Math.max(state.tat - state.burstMs, now);
  state.tat = Math.max(state.tat, now) + state.intervalMs;
  return slot;
}

export function applyLesson(state: BudgetState, lesson: BudgetLesson, now: number, rules: ResolvedRules): void {
  const slowest = 1_000 / rules.minRatePerSec;
  if (lesson.kind === 'faster') {
    state.intervalMs = Math.max(state.floorMs, 1_000 / (1_000 / state.intervalMs + rules.increasePerSec));
    return;
  }
  state.burstMs = 0;
  if (lesson.kind === 'quota') {
    state.floorMs = Math.min(slowest, Math.max(1_000 / rules.maxRatePerSec, 1_000 / (lesson.ratePerSec * rules.headroom)));
    // A pace slower than the cap (after bare 429s) is not kept: the cap is the better knowledge.
    state.intervalMs = state.floorMs;
  } else if (now - state.lastDecreaseAt >= rules.decreaseHoldMs) {
    state.intervalMs = Math.min(slowest, state.intervalMs / rules.decrease);
    state.lastDecreaseAt = now;
  }
  if (lesson.resumeAt !== null) state.tat = Math.max(state.tat, lesson.resumeAt);
}

export interface LocalBudgetOptions extends BudgetRules {
  /** Keys remembered; the least recently used is forgotten first. Default 10 000. */
  maxKeys?: number;
  /** A key idle this long is forgotten (its pace starts over). Default 3 600 000 ms (1 h). */
  idleMs?: number;
  now?: () => number;
}

/** How stale a key's place in the least-recently-used order may be, in ms. */
const RECENCY_MS = 1_000;

/** The budget of one process: per-replica when there is no Redis, and the fallback while Redis is away. */
export function createLocalBudget(options: LocalBudgetOptions = {}): KeyBudget & { readonly size: number } {
  const { maxKeys = 10_000, idleMs = 3_600_000, now = Date.now } = options;
  const rules = resolveRules(options);
  const states = new Map<string, BudgetState & { usedAt: number }>();

  function stateOf(keyHash: string): BudgetState {
    const at = now();
    let state = states.get(keyHash);
    // Used within the last second: in its place already (a busy key is asked on every request).
    if (state && at - state.usedAt < RECENCY_MS) return state;
    if (state && at - state.usedAt > idleMs) state = undefined;
    states.delete(keyHash);
    state ??= { ...freshState(rules), usedAt: at };
    state.usedAt = at;
    // Maps iterate in insertion order: re-inserting on use keeps the least recently used first.
    states.set(keyHash, state);
    if (states.size > maxKeys) states.delete(states.keys().next().value as string);
    return state;
  }

  return {
    reserve: (keyHash) => reserveSlot(stateOf(keyHash), now()),
    reserveNow(keyHash) {
      const state = stateOf(keyHash);
      const at = now();
      if (state.tat - state.burstMs > at) return false;
      reserveSlot(state, at);
      return true;
    },
    learn(keyHash, lesson) {
      applyLesson(stateOf(keyHash), lesson, now(), rules);
    },
    peek(keyHash) {
      const state = states.get(keyHash) ?? freshState(rules);
      return { ratePerSec: 1_000 / state.intervalMs, nextSlotAt: Math.max(state.tat - state.burstMs, now()) };
    },
    start: () => undefined,
    dispose: async () => undefined,
    get size() {
      return states.size;
    },
  };
}
