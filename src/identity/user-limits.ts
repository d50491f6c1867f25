import { GatewayError } from '../errors.ts';
import { createLruMap } from '../lib/lru-map.ts';

/**
 * Per-user limits on submits (AUTH_MODE=jwt), each optional and off by
 * default: unfinished tasks at once, submits in any 60 s, and spend in a UTC
 * day (the `preConsumedCost` of each accepted submit, given back when the task
 * is cancelled or fails). A submit is refused when the user is already at a
 * limit; so the last accepted task may take the user's spend past
 * `dailySpend` (its cost is known only once the upstream answers). Submits in
 * flight are not free meanwhile: each counts as the user's most expensive task
 * of the day, and before the day has one, a user has one submit in flight at
 * a time (`SPEND_PENDING_RETRY_MS`), so that concurrent submits cannot all
 * pass below the limit.
 */
export interface UserLimitSettings {
  /** `USER_MAX_ACTIVE_TASKS`: unfinished tasks one user may have; null: off. */
  readonly maxActiveTasks: number | null;
  /** `USER_SUBMITS_PER_MINUTE`: submits one user may make in any 60 s; null: off. */
  readonly submitsPerMinute: number | null;
  /** `USER_DAILY_SPEND`: quota units one user may spend in a UTC day; null: off. */
  readonly dailySpend: number | null;
}

/** Names of the limits, as `SubmitLimitError.limit` and `viewer.limits[].limit` give them. */
export const LimitName = { ACTIVE_TASKS: 'ACTIVE_TASKS', SUBMITS_PER_MINUTE: 'SUBMITS_PER_MINUTE', DAILY_SPEND: 'DAILY_SPEND' } as const;
export type LimitName = (typeof LimitName)[keyof typeof LimitName];

/** Why a submit was refused. */
export interface LimitRefusal {
  limit: LimitName;
  /** When trying again may succeed, in ms from now; null when that depends on a task ending (`ACTIVE_TASKS`). */
  retryAfterMs: number | null;
  /** When the limit frees up (ms since the epoch); null as above. */
  resetsAt: number | null;
}

/** Where a user stands against one configured limit. */
export interface LimitUsage {
  limit: LimitName;
  max: number;
  used: number;
  /** When `used` next goes down by time alone (ms since the epoch); null for `ACTIVE_TASKS`, or when nothing is used. */
  resetsAt: number | null;
}

/** How a task ended, for its spend: nothing given back, what was counted for it, or an amount (at most what was counted). */
export type Refund = 'none' | 'counted' | number;

export interface UserLimits {
  /** Checks every limit and, when all pass, takes a place for `ticket` (a pending active task and a submit) at once, atomically. */
  admit(ownerHash: string, ticket: string): Promise<LimitRefusal | null>;
  /** The upstream accepted the submit of `ticket` as `taskId`: the place is now that task's, and its cost is spent today. */
  accepted(ownerHash: string, ticket: string, taskId: string, cost: number | null): Promise<void>;
  /** The submit of `ticket` reached no task: its active place is given back (the submit still counts per minute). */
  release(ownerHash: string, ticket: string): Promise<void>;
  /** `taskId` ended: it stops counting as active and `refund` is given back from the day it was spent (once, whoever calls). */
  ended(ownerHash: string, taskId: string, refund: Refund): Promise<void>;
  /** Up to `max` of the user's unfinished tasks, oldest first. */
  unfinished(ownerHash: string, max: number): Promise<string[]>;
  /** Each configured limit with what is used. */
  usage(ownerHash: string): Promise<LimitUsage[]>;
  dispose(): Promise<void>;
}

/** The limit store cannot be reached: the submit is refused with a retryable error, nothing sent upstream. */
export class UserLimitsUnavailableError extends GatewayError {
  override readonly code = 'USER_LIMITS_UNAVAILABLE';
  override readonly clientCode = 'SERVICE_UNAVAILABLE';
  override readonly transient = true;
}

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;
/** A place taken by a submit that never reported back (its replica died) is dropped after this, in ms: 5 min. */
export const PENDING_TTL_MS = 300_000;
/** An active task not seen to end is dropped after this, in ms (7 days, as its owner record). */
export const ACTIVE_TTL_MS = 7 * DAY_MS;
/** A submit refused for spend while the user's others are in flight may try again after this, in ms: 1 s. */
export const SPEND_PENDING_RETRY_MS = 1_000;
/** Active tasks remembered per user when `USER_MAX_ACTIVE_TASKS` is off (for spend refunds); the oldest go first. */
export const MAX_TRACKED_TASKS = 1_000;

/** The first ms of the next UTC day. */
export const nextUtcDay = (now: number) => (Math.floor(now / DAY_MS) + 1) * DAY_MS;

export interface MemoryUserLimitsOptions {
  settings: UserLimitSettings;
  /** Users remembered; the least recently active goes first (and starts again from zero). Default 100 000. */
  maxUsers?: number;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

interface UserState {
  /** Unfinished tasks and pending tickets (`~` first): when placed (ms), and the cost counted for each. */
  active: Map<string, { at: number; cost: number }>;
  /** When each submit of the last minute was admitted, oldest first. */
  submits: number[];
  day: number;
  spent: number;
  /** The most expensive task accepted today: what each submit in flight counts as. */
  most: number;
}

/**
 * The spend rule of both stores: at or over the limit until the next UTC day;
 * or, with submits in flight, past it once each counts as the day's most
 * expensive task (before the day has one, any submit in flight), for a moment.
 */
export function spendRefusal(limit: number, spent: number, pending: number, most: number, at: number): LimitRefusal | null {
  if (spent >= limit) return { limit: LimitName.DAILY_SPEND, retryAfterMs: nextUtcDay(at) - at, resetsAt: nextUtcDay(at) };
  if (pending > 0 && (most <= 0 || spent + pending * most >= limit)) {
    return { limit: LimitName.DAILY_SPEND, retryAfterMs: SPEND_PENDING_RETRY_MS, resetsAt: at + SPEND_PENDING_RETRY_MS };
  }
  return null;
}

/** The single-process store: the same rules as the Redis one, for this process only. */
export function createMemoryUserLimits(options: MemoryUserLimitsOptions): UserLimits & { size(): number } {
  const { settings, maxUsers = 100_000, now = Date.now } = options;
  const { maxActiveTasks, submitsPerMinute, dailySpend } = settings;
  const users = createLruMap<string, UserState>({ maxEntries: maxUsers });

  /** The user's state with what time has retired dropped. */
  function stateOf(ownerHash: string): UserState {
    const at = now();
    let state = users.get(ownerHash);
    if (!state) {
      state = { active: new Map(), submits: [], day: Math.floor(at / DAY_MS), spent: 0, most: 0 };
      users.set(ownerHash, state);
    }
    for (const [member, entry] of state.active) {
      if (at - entry.at > (member.startsWith('~') ? PENDING_TTL_MS : ACTIVE_TTL_MS)) state.active.delete(member);
    }
    while (state.submits.length > 0 && state.submits[0]! <= at - MINUTE_MS) state.submits.shift();
    if (state.day !== Math.floor(at / DAY_MS)) {
      state.day = Math.floor(at / DAY_MS);
      state.spent = 0;
      state.most = 0;
    }
    return state;
  }

  return {
    async admit(ownerHash, ticket) {
      const state = stateOf(ownerHash);
      const at = now();
      if (maxActiveTasks !== null && state.active.size >= maxActiveTasks) {
        return { limit: LimitName.ACTIVE_TASKS, retryAfterMs: null, resetsAt: null };
      }
      if (submitsPerMinute !== null && state.submits.length >= submitsPerMinute) {
        const resetsAt = state.submits[state.submits.length - submitsPerMinute]! + MINUTE_MS;
        return { limit: LimitName.SUBMITS_PER_MINUTE, retryAfterMs: resetsAt - at, resetsAt };
      }
      if (dailySpend !== null) {
        let pending = 0;
        for (const member of state.active.keys()) if (member.startsWith('~')) pending++;
        const refusal = spendRefusal(dailySpend, state.spent, pending, state.most, at);
        if (refusal) return refusal;
      }
      state.active.set(`~${ticket}`, { at, cost: 0 });
      state.submits.push(at);
      if (submitsPerMinute !== null && state.submits.length > submitsPerMinute) state.submits.shift();
      return null;
    },
    async accepted(ownerHash, ticket, taskId, cost) {
      const state = stateOf(ownerHash);
      state.active.delete(`~${ticket}`);
      // An idempotent resubmit answers a task already counted.
      if (state.active.has(taskId)) return;
      state.active.set(taskId, { at: now(), cost: cost ?? 0 });
      if (maxActiveTasks === null && state.active.size > MAX_TRACKED_TASKS) {
        state.active.delete(state.active.keys().next().value as string);
      }
      state.spent += cost ?? 0;
      state.most = Math.max(state.most, cost ?? 0);
    },
    async release(ownerHash, ticket) {
      stateOf(ownerHash).active.delete(`~${ticket}`);
    },
    async ended(ownerHash, taskId, refund) {
      const state = stateOf(ownerHash);
      const entry = state.active.get(taskId);
      if (!entry) return;
      state.active.delete(taskId);
      const amount = refund === 'none' ? 0 : refund === 'counted' ? entry.cost : Math.min(refund, entry.cost);
      if (amount > 0 && Math.floor(entry.at / DAY_MS) === state.day) state.spent = Math.max(0, state.spent - amount);
    },
    async unfinished(ownerHash, max) {
      return [...stateOf(ownerHash).active.keys()].filter((member) => !member.startsWith('~')).slice(0, max);
    },
    async usage(ownerHash) {
      const state = stateOf(ownerHash);
      const at = now();
      const usage: LimitUsage[] = [];
      if (maxActiveTasks !== null)
        usage.push({ limit: LimitName.ACTIVE_TASKS, max: maxActiveTasks, used: state.active.size, resetsAt: null });
      if (submitsPerMinute !== null) {
        const first = state.submits[0];
        usage.push({
          limit: LimitName.SUBMITS_PER_MINUTE,
          max: submitsPerMinute,
          used: state.submits.length,
          resetsAt: first === undefined ? null : first + MINUTE_MS,
        });
      }
      if (dailySpend !== null) {
        usage.push({ limit: LimitName.DAILY_SPEND, max: dailySpend, used: state.spent, resetsAt: state.spent > 0 ? nextUtcDay(at) : null });
      }
      return usage;
    },
    size: () => users.size,
    dispose: async () => undefined,
  };
}

/** Whether any limit is configured (otherwise nothing is counted at all). */
export const anyLimit = (settings: UserLimitSettings) =>
  settings.maxActiveTasks !== null || settings.submitsPerMinute !== null || settings.dailySpend !== null;
