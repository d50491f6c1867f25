/**
 * The rules of a key's upstream budget, in one place and in both of their
 * forms: TypeScript for the budget of one process (key-budget.ts) and Lua for
 * the budget a fleet shares in Redis (redis-budget.ts). Each form sits beside
 * the other, and test/upstream/gcra-parity.test.ts runs one table of
 * reservations and lessons through both: change one alone and it fails.
 *
 * The pace is GCRA: one "theoretical arrival time" (`tat`) per key; each
 * request reserves the next slot, `intervalMs` after the previous one, and a
 * key may run `burstMs` ahead of it. What answers teach:
 *  - slow start: while the key never met a quota signal, the pace doubles each
 *    second it is saturated (up to the ceiling, `UPSTREAM_RATE_LIMIT_PER_KEY` when set);
 *  - a quota 429 with `cap` per `window` sets the pace to `headroom` of it for good
 *    (the learned cap is also the ceiling from then on);
 *  - `reset_at` or `Retry-After` pauses the key until then; afterwards the slots
 *    resume one by one at the pace, so the key's loops never retry together;
 *  - a 429 that says nothing halves the pace (at most once per `decreaseHoldMs`);
 *  - once any 429 was met, the pace grows by `increasePerSec` each second the key is saturated.
 */
export type BudgetLesson =
  /** A quota 429 gave `cap` per window: `ratePerSec` is cap / window. `resumeAt` (ms): its reset, if given. */
  | { kind: 'quota'; ratePerSec: number; resumeAt: number | null }
  /** A 429 without cap: slow down; pause until `resumeAt` (ms) when it said. */
  | { kind: 'slower'; resumeAt: number | null }
  /** Answered while the key had requests waiting for their slots: speed up. */
  | { kind: 'faster' };

export interface BudgetRules {
  /** Pace of a key nothing is known about yet, requests/s. Default 50 (what comparable APIs allow). */
  initialRatePerSec?: number;
  /** Highest pace ever used, requests/s (`UPSTREAM_RATE_LIMIT_PER_KEY` when set). Default 10 000. */
  maxRatePerSec?: number;
  /** Lowest pace a run of bare 429s can push a key to, requests/s. Default 0.5. */
  minRatePerSec?: number;
  /** Share of a learned cap that is used, leaving room for clock skew and latency jitter. Default 0.95. */
  headroom?: number;
  /** Pace factor after a 429 that gave no cap. Default 0.5. */
  decrease?: number;
  /** Pace added per second while a key that met a 429 is saturated, requests/s. Default 1. */
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

export type ResolvedRules = Required<BudgetRules>;

/** Slow start: the pace is multiplied by this each second a key that never met a 429 is saturated. */
export const SLOW_START_FACTOR_PER_SEC = 2;

/** Growth is counted over at most this much time since the last growth, ms: a key idle for an hour does not leap. */
const GROWTH_SPAN_MS = 1_000;

export function resolveRules(rules: BudgetRules = {}): ResolvedRules {
  const {
    initialRatePerSec = 50, // requests/s
    maxRatePerSec = 10_000, // requests/s
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

/** One key's budget, as stored (in memory, or as the fields of a Redis hash). */
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
  /** 1 once the key met a 429 (its pace then grows carefully), else 0 (slow start). */
  learned: number;
  /** When the pace last grew, ms. */
  grownAt: number;
}

/** A key nothing is known about. */
export function freshState(rules: ResolvedRules): BudgetState {
  return {
    tat: 0,
    intervalMs: 1_000 / rules.initialRatePerSec,
    floorMs: 1_000 / rules.maxRatePerSec,
    lastDecreaseAt: 0,
    burstMs: rules.burstMs,
    learned: 0,
    grownAt: 0,
  };
}

/**
 * Takes `count` consecutive slots and returns the first: now if the key is idle (or within its
 * burst), else one interval after the last one reserved. The others follow one interval apart.
 */
export function reserveSlots(state: BudgetState, now: number, count = 1): number {
  const slot = Math.max(state.tat - state.burstMs, now);
  state.tat = Math.max(state.tat, now) + count * state.intervalMs;
  return slot;
}

/**
 * How many slots a lease holds: what `durationMs` holds at the key's pace, but no more than the
 * `want` the replica asks for (slots it would not spend are slots the fleet loses); at least one.
 */
export function leaseCount(state: BudgetState, durationMs: number, want = Number.POSITIVE_INFINITY): number {
  return Math.max(1, Math.min(want, Math.floor(durationMs / state.intervalMs)));
}

export function applyLesson(state: BudgetState, lesson: BudgetLesson, now: number, rules: ResolvedRules): void {
  const slowest = 1_000 / rules.minRatePerSec;
  if (lesson.kind === 'faster') {
    const spanSec = Math.min(GROWTH_SPAN_MS, Math.max(0, now - state.grownAt)) / 1_000;
    const rate = 1_000 / state.intervalMs;
    const grown = state.learned === 1 ? rate + rules.increasePerSec * spanSec : rate * SLOW_START_FACTOR_PER_SEC ** spanSec;
    state.intervalMs = Math.max(state.floorMs, 1_000 / grown);
    state.grownAt = now;
    return;
  }
  state.burstMs = 0;
  state.learned = 1;
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

/** The fields of the Redis hash, in the order the scripts read and write them. */
const FIELDS = `'tat', 'interval', 'floor', 'decreased', 'burst', 'learned', 'grown'`;

/**
 * Reads the key's hash into locals (a fresh key from the rules in ARGV[2..]) and defines `save()`.
 * ARGV: now, then `ruleArgs(rules)`: interval, floor, burst of a fresh key, slowest interval,
 * headroom, decrease, increase per second, decrease hold, slow-start factor, growth span, TTL.
 */
const PRELUDE = `
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], ${FIELDS})
local tat = tonumber(s[1]) or 0
local interval = tonumber(s[2]) or tonumber(ARGV[2])
local floor = tonumber(s[3]) or tonumber(ARGV[3])
local decreased = tonumber(s[4]) or 0
local burst = tonumber(s[5]) or tonumber(ARGV[4])
local learned = tonumber(s[6]) or 0
local grown = tonumber(s[7]) or 0
local function save()
  redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat), 'interval', string.format('%.6f', interval),
    'floor', string.format('%.6f', floor), 'decreased', string.format('%.3f', decreased),
    'burst', string.format('%.3f', burst), 'learned', learned, 'grown', string.format('%.3f', grown))
  redis.call('PEXPIRE', KEYS[1], ARGV[12])
end
`;

/** The arguments after `now` that every script takes: the rules. */
export function ruleArgs(rules: ResolvedRules, ttlMs: number): number[] {
  return [
    1_000 / rules.initialRatePerSec,
    1_000 / rules.maxRatePerSec,
    rules.burstMs,
    1_000 / rules.minRatePerSec,
    rules.headroom,
    rules.decrease,
    rules.increasePerSec,
    rules.decreaseHoldMs,
    SLOW_START_FACTOR_PER_SEC,
    GROWTH_SPAN_MS,
    ttlMs,
  ];
}

/**
 * `reserveSlots` after `leaseCount`: KEYS[1] the key's hash; ARGV as PRELUDE, then the lease's
 * duration in ms and the most slots wanted. Returns the first slot, the interval and the number of
 * slots taken.
 */
export const RESERVE_LUA = `${PRELUDE}
local count = math.max(1, math.min(tonumber(ARGV[14]), math.floor(tonumber(ARGV[13]) / interval)))
local slot = math.max(tat - burst, now)
tat = math.max(tat, now) + count * interval
save()
return {string.format('%.3f', slot), string.format('%.6f', interval), count}`;

/**
 * `applyLesson`: KEYS[1] the key's hash; ARGV as PRELUDE, then the kind (faster, quota, slower),
 * the quota's rate per second (or ''), and resumeAt (or ''). Returns the interval.
 */
export const LEARN_LUA = `${PRELUDE}
local kind = ARGV[13]
local slowest = tonumber(ARGV[5])
if kind == 'faster' then
  local span = math.min(tonumber(ARGV[11]), math.max(0, now - grown)) / 1000
  local rate = 1000 / interval
  local faster
  if learned == 1 then faster = rate + tonumber(ARGV[8]) * span else faster = rate * tonumber(ARGV[10]) ^ span end
  interval = math.max(floor, 1000 / faster)
  grown = now
else
  burst = 0
  learned = 1
  if kind == 'quota' then
    floor = math.min(slowest, math.max(tonumber(ARGV[3]), 1000 / (tonumber(ARGV[14]) * tonumber(ARGV[6]))))
    interval = floor
  elseif now - decreased >= tonumber(ARGV[9]) then
    interval = math.min(slowest, interval / tonumber(ARGV[7]))
    decreased = now
  end
  if ARGV[15] ~= '' then tat = math.max(tat, tonumber(ARGV[15])) end
end
save()
return string.format('%.6f', interval)`;

/** The arguments after the rules that LEARN_LUA takes for `lesson`. */
export function lessonArgs(lesson: BudgetLesson): Array<string | number> {
  const rate = lesson.kind === 'quota' ? lesson.ratePerSec : '';
  const resumeAt = lesson.kind === 'faster' || lesson.resumeAt === null ? '' : lesson.resumeAt;
  return [lesson.kind, rate, resumeAt];
}

/** Reads a key's hash as stored by the scripts (for tests and diagnostics); null when absent. */
export function stateFromHash(hash: Record<string, string>): BudgetState | null {
  if (hash.tat === undefined) return null;
  return {
    tat: Number(hash.tat),
    intervalMs: Number(hash.interval),
    floorMs: Number(hash.floor),
    lastDecreaseAt: Number(hash.decreased),
    burstMs: Number(hash.burst),
    learned: Number(hash.learned),
    grownAt: Number(hash.grown),
  };
}
