import { createLruMap } from '../lib/lru-map.ts';
import type { RedisConfig } from '../lib/redis-config.ts';
import { createRedisConnection } from '../lib/redis-connection.ts';
import { type BudgetLesson, type BudgetRules, LEARN_LUA, lessonArgs, RESERVE_LUA, resolveRules, ruleArgs } from './gcra.ts';
import { createLocalBudget, KEYS_KEPT, type KeyBudget } from './key-budget.ts';

export interface RedisBudgetOptions extends BudgetRules {
  /** Where Redis is (`config.redis`). */
  redis: RedisConfig;
  /** Prefix of every Redis key. Default `redis.prefix` (`REDIS_PREFIX`). */
  prefix?: string;
  /** A key's budget left unused this long is forgotten by Redis. Default 3 600 000 ms (1 h). */
  idleMs?: number;
  now?: () => number;
}

/** Shortest lease asked of Redis, ms of the key's pace. */
const MIN_LEASE_MS = 250;
/** Longest lease, ms: what a replica may spend that the others no longer see. */
const MAX_LEASE_MS = 2_000;
/** A lease lasts this many Redis round trips, so that the next one arrives before it runs out. */
const LEASE_ROUND_TRIPS = 3;
/** How late a leased slot may still be spent, ms (at least its interval): see `dropPassed`. */
const PASSED_SLACK_MS = 25;
/** Weight of the newest Redis round trip in its running average. */
const RTT_WEIGHT = 0.2;
/**
 * A lease asked for and not answered within this many round trips (and at least `MIN_LATE_MS`)
 * is late: the key's requests look for it again then.
 */
const LATE_ROUND_TRIPS = 2;
const MIN_LATE_MS = 200;
/**
 * A lease not answered within this long, ms, is stalled (Redis is not answering in time, as its
 * command deadline says): the replica spends its local budget until Redis answers again. A lease
 * that is merely late is waited for: spending locally then, every replica at the whole pace, was
 * what took three replicas past a quota (4.9 to 6.1 % of 429s), and a busy event loop makes every
 * lease look late.
 */
const STALLED_MS = 1_000;

/** Consecutive slots of one lease from Redis: `left` of them, from `next` on, one interval apart. */
interface Slice {
  next: number;
  intervalMs: number;
  left: number;
}

/**
 * What a replica holds of one key's budget: the slices leased from Redis and not yet spent, in order.
 * Each slot is spent at the time Redis gave it, never earlier: the next slice may start after other
 * replicas' slices, and spending it straight after this one would overlap theirs.
 */
interface Lease {
  slices: Slice[];
  /** The key's interval as Redis last said, ms. */
  intervalMs: number;
  /** When the last leased slot falls, ms (0: none yet). */
  endsAt: number;
  /** When the lease request under way was sent (ms by the budget's clock); null: none is. */
  askedAt: number | null;
  /** Slots spent since `countedAt`, and in the span before it: the replica's own demand for the key. */
  spent: number;
  spentBefore: number;
  countedAt: number;
}

interface BudgetCommands {
  budgetReserve(key: string, ...args: Array<string | number>): Promise<[string, string, number]>;
  budgetLearn(key: string, ...args: Array<string | number>): Promise<string>;
}

/**
 * The budget of every key shared by the fleet: each key's GCRA state lives in
 * one Redis hash (`<prefix>:budget:<key hash>`, never a key) updated atomically
 * by the scripts of gcra.ts. A replica never waits on Redis: it leases a slice
 * of a key's slots (`LEASE_ROUND_TRIPS` Redis round trips of the pace, between
 * `MIN_LEASE_MS` and `MAX_LEASE_MS`), spends them locally, and asks for the next
 * slice while a round trip of the current one is left. When the slice runs out
 * before the next arrives (Redis slower than the pace needs), or while Redis
 * cannot be reached, the replica spends its own local budget, which has learnt
 * the same lessons it saw; nothing fails because of Redis.
 */
export function createRedisBudget(options: RedisBudgetOptions): KeyBudget & { healthy(): boolean } {
  const { redis: target, prefix = target.prefix, idleMs = 3_600_000, now = Date.now } = options;
  const rules = resolveRules(options);
  const local = createLocalBudget({ ...options, now, idleMs });
  // Fails at once while Redis is away: the local budget takes over.
  const redis = createRedisConnection(target, { commandTimeoutMs: Math.max(STALLED_MS, target.commandTimeoutMs) });
  redis.defineCommand('budgetReserve', { numberOfKeys: 1, lua: RESERVE_LUA });
  redis.defineCommand('budgetLearn', { numberOfKeys: 1, lua: LEARN_LUA });
  const scripts = redis as unknown as BudgetCommands;
  const leases = createLruMap<string, Lease>({ maxEntries: KEYS_KEPT });
  const keyOf = (keyHash: string) => `${prefix}:budget:${keyHash}`;
  const healthy = () => redis.status === 'ready';
  const scriptRules = ruleArgs(rules, idleMs);
  /** Running average of a Redis round trip, ms. */
  let rttMs = 0;
  let onSlots: ((keyHash: string) => void) | undefined;

  function leaseOf(keyHash: string): Lease {
    let lease = leases.peek(keyHash);
    if (!lease) {
      lease = { slices: [], intervalMs: 1_000 / local.rate(keyHash), endsAt: 0, askedAt: null, spent: 0, spentBefore: 0, countedAt: 0 };
      leases.set(keyHash, lease);
    }
    return lease;
  }

  /**
   * Asks Redis for the next slice once less than a round trip (and a bit) of what is held is left. It
   * asks for what the replica spends (`waiting` requests now, and what it spent in the last lease's
   * time), no more: slots leased and not spent are lost to every replica.
   */
  function topUp(keyHash: string, lease: Lease, at: number, waiting: number): void {
    if (lease.askedAt !== null) return;
    const leftMs = lease.slices.length > 0 ? lease.endsAt - at : 0;
    if (leftMs > 1.5 * rttMs + MIN_LEASE_MS / 2) return;
    lease.askedAt = at;
    const durationMs = Math.min(MAX_LEASE_MS, Math.max(MIN_LEASE_MS, LEASE_ROUND_TRIPS * rttMs));
    if (at - lease.countedAt >= durationMs) {
      lease.spentBefore = at - lease.countedAt < 2 * durationMs ? lease.spent : 0;
      lease.spent = 0;
      lease.countedAt = at;
    }
    const held = lease.slices.reduce((sum, slice) => sum + slice.left, 0);
    const want = Math.max(1, waiting + 1 + Math.max(lease.spent, lease.spentBefore) - held);
    const sentAt = performance.now();
    // Slots from when the answer is expected here (less the slack a slot may be spent late by), not from
    // when it was asked: with Redis far away, slots of the round trip itself would have passed on arrival.
    const from = at + Math.max(0, rttMs - PASSED_SLACK_MS);
    scripts.budgetReserve(keyOf(keyHash), from, ...scriptRules, durationMs, want).then(
      ([slot, interval, count]) => {
        const tookMs = performance.now() - sentAt;
        rttMs = rttMs === 0 ? tookMs : rttMs + (tookMs - rttMs) * RTT_WEIGHT;
        lease.askedAt = null;
        const slice = { next: Number(slot), intervalMs: Number(interval), left: Number(count) };
        lease.slices.push(slice);
        lease.intervalMs = slice.intervalMs;
        lease.endsAt = Math.max(lease.endsAt, slice.next + slice.left * slice.intervalMs);
        onSlots?.(keyHash);
      },
      () => {
        lease.askedAt = null;
      },
    );
  }

  /**
   * Drops the slots that passed unspent (more than an interval, `PASSED_SLACK_MS` and a quarter of a
   * Redis round trip ago: a slice's answer may come later than the round trip expected): spending
   * them late would be a burst the fleet did not plan, and a quota counted in fixed windows would
   * refuse it. The slack is for the turn of the event loop between a lease's answer and its spending.
   */
  function dropPassed(lease: Lease, at: number): void {
    for (let slice = lease.slices[0]; slice; slice = lease.slices[0]) {
      const slackMs = Math.max(slice.intervalMs, PASSED_SLACK_MS, rttMs / 4);
      if (slice.next >= at - slackMs) return;
      const passed = Math.min(slice.left, Math.ceil((at - slackMs - slice.next) / slice.intervalMs));
      slice.left -= passed;
      slice.next += passed * slice.intervalMs;
      if (slice.left > 0) return;
      lease.slices.shift();
    }
  }

  /**
   * Whether the local budget spends for the key now: nothing is leased and the lease asked for is
   * stalled, or the key is idle (no slot for `MAX_LEASE_MS`: its first request does not wait for
   * Redis). A busy key whose slices ran out waits for the next.
   */
  function spendsLocally(lease: Lease, at: number): boolean {
    if (lease.slices.length > 0) return false;
    return lease.askedAt === null ? lease.endsAt < at - MAX_LEASE_MS : at - lease.askedAt >= STALLED_MS;
  }
  const lateMs = () => Math.max(MIN_LATE_MS, LATE_ROUND_TRIPS * rttMs);

  return {
    healthy,
    onSlots(listener) {
      onSlots = listener;
    },
    start() {
      redis.connect().catch(() => undefined);
    },
    reserveNow(keyHash, waiting = 0) {
      if (!healthy()) return local.reserveNow(keyHash);
      const at = now();
      const lease = leaseOf(keyHash);
      dropPassed(lease, at);
      const locally = spendsLocally(lease, at);
      topUp(keyHash, lease, at, waiting);
      if (locally) return local.reserveNow(keyHash);
      const slice = lease.slices[0];
      if (!slice || slice.next > at) return false;
      slice.next += slice.intervalMs;
      slice.left -= 1;
      if (slice.left === 0) lease.slices.shift();
      lease.spent += 1;
      return true;
    },
    learn(keyHash, lesson: BudgetLesson) {
      local.learn(keyHash, lesson);
      const lease = leases.peek(keyHash);
      // A 429 makes the slots leased before it wrong: the next slice comes at the pace it taught.
      if (lease && lesson.kind !== 'faster') lease.slices.length = 0;
      if (!healthy()) return;
      scripts.budgetLearn(keyOf(keyHash), now(), ...scriptRules, ...lessonArgs(lesson)).then(
        (interval) => {
          if (lease) lease.intervalMs = Number(interval);
        },
        // The local budget learnt it already.
        () => undefined,
      );
    },
    rate(keyHash) {
      const lease = healthy() ? leases.peek(keyHash) : undefined;
      return lease ? 1_000 / lease.intervalMs : local.rate(keyHash);
    },
    nextSlotAt(keyHash) {
      const at = now();
      const lease = healthy() ? leases.peek(keyHash) : undefined;
      if (!lease || spendsLocally(lease, at)) return local.nextSlotAt(keyHash);
      // Waiting for a lease: ask again when its slot is due, or when the lease asked for is late.
      const slice = lease.slices[0];
      return Math.max(at, slice ? slice.next : (lease.askedAt ?? at) + lateMs());
    },
    async dispose() {
      if (redis.status === 'wait') redis.disconnect();
      else await redis.quit().catch(() => redis.disconnect());
    },
  };
}
