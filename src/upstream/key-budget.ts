import { applyLesson, type BudgetLesson, type BudgetRules, type BudgetState, freshState, reserveSlots, resolveRules } from './gcra.ts';

export type { BudgetLesson, BudgetRules, BudgetState, ResolvedRules } from './gcra.ts';
export { applyLesson, freshState, reserveSlots, resolveRules } from './gcra.ts';

/** Key states kept by every per-key map of the scheduler and the budgets; past it the least recently used is forgotten. */
export const KEYS_KEPT = 10_000;

/**
 * The pace of each key (its rules are in gcra.ts). Every method answers at once and none throws:
 * a budget that is shared through Redis spends a slice leased from Redis, and its own local budget
 * when Redis is away or late, so that no request waits on Redis.
 */
export interface KeyBudget {
  /**
   * Takes the key's slot if one is free now: true when taken; else ask again at `nextSlotAt`.
   * `waiting`: the key's requests waiting here besides this one (a shared budget leases for them).
   */
  reserveNow(keyHash: string, waiting?: number): boolean;
  /** Applies what an answer taught. */
  learn(keyHash: string, lesson: BudgetLesson): void;
  /** The key's pace now, requests/s. */
  rate(keyHash: string): number;
  /** When to ask `reserveNow` again, ms (never before now): the key's next free slot, as far as is known here. */
  nextSlotAt(keyHash: string): number;
  /**
   * Tells `listener` when slots of a key arrive between `nextSlotAt` and the time it gave (a shared
   * budget's lease answered): what waits for them need not wait out that time. A local budget has none.
   */
  onSlots?(listener: (keyHash: string) => void): void;
  /** Connects what the budget needs (Redis); nothing connects before. */
  start(): void;
  /** Releases what the budget holds (a Redis connection). */
  dispose(): Promise<void>;
}

export interface LocalBudgetOptions extends BudgetRules {
  /** A key idle this long is forgotten (its pace starts over). Default 3 600 000 ms (1 h). */
  idleMs?: number;
  now?: () => number;
}

/**
 * A slot taken up to this late (ms) still counts from when it came: the timer that waits for it fires
 * late, and without this the pace would lose what the timers lose (about a tenth at 50/s).
 */
const TIMER_SLACK_MS = 10;

/** How stale a key's place in the least-recently-used order may be, in ms. */
const RECENCY_MS = 1_000;

/** The budget of one process: per-replica when there is no Redis, and the fallback while Redis is away or late. */
export function createLocalBudget(options: LocalBudgetOptions = {}): KeyBudget & { readonly size: number } {
  const { idleMs = 3_600_000, now = Date.now } = options;
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
    if (states.size > KEYS_KEPT) states.delete(states.keys().next().value as string);
    return state;
  }

  const known = (keyHash: string) => states.get(keyHash) ?? freshState(rules);

  return {
    reserveNow(keyHash) {
      const state = stateOf(keyHash);
      const at = now();
      if (state.tat - state.burstMs > at) return false;
      reserveSlots(state, Math.max(Math.min(state.tat, at), at - TIMER_SLACK_MS));
      return true;
    },
    learn(keyHash, lesson) {
      applyLesson(stateOf(keyHash), lesson, now(), rules);
    },
    rate: (keyHash) => 1_000 / known(keyHash).intervalMs,
    nextSlotAt(keyHash) {
      const state = known(keyHash);
      return Math.max(state.tat - state.burstMs, now());
    },
    start: () => undefined,
    dispose: async () => undefined,
    get size() {
      return states.size;
    },
  };
}
