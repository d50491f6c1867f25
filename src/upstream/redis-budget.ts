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

/** What a replica holds of one key's budget: slots leased from Redis, spent here one interval apart. */
interface Lease {
  /** The next leased slot, ms. */
  next: number;
  intervalMs: number;
  /** Leased slots not yet spent. */
  left: number;
  /** When the lease request under way was sent (ms by the budget's clock); null: none is. */
  askedAt: number | null;
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

  function leaseOf(keyHash: string): Lease {
    let lease = leases.peek(keyHash);
    if (!lease) {
      lease = { next: 0, intervalMs: 1_000 / local.rate(keyHash), left: 0, askedAt: null };
      leases.set(keyHash, lease);
    }
    return lease;
  }

  /** Asks Redis for the next slice once less than a round trip (and a bit) of the current one is left. */
  function topUp(keyHash: string, lease: Lease, at: number): void {
    if (lease.askedAt !== null) return;
    const leftMs = lease.left > 0 ? lease.next - at + lease.left * lease.intervalMs : 0;
    if (leftMs > 1.5 * rttMs + MIN_LEASE_MS / 2) return;
    lease.askedAt = at;
    const durationMs = Math.min(MAX_LEASE_MS, Math.max(MIN_LEASE_MS, LEASE_ROUND_TRIPS * rttMs));
    const sentAt = performance.now();
    scripts.budgetReserve(keyOf(keyHash), at, ...scriptRules, durationMs).then(
      ([slot, interval, count]) => {
        rttMs += (performance.now() - sentAt - rttMs) * RTT_WEIGHT;
        lease.askedAt = null;
        // A new slice's slots follow what is left of the previous one: Redis reserved them after.
        if (lease.left === 0) lease.next = Number(slot);
        lease.intervalMs = Number(interval);
        lease.left += Number(count);
      },
      () => {
        lease.askedAt = null;
      },
    );
  }

  /**
   * Whether the local budget spends for the key now: its lease ran out and the next one is stalled,
   * or the key is idle (no slice for `MAX_LEASE_MS`: its first request does not wait for Redis). A
   * busy key whose slice just ran out waits for the next.
   */
  function spendsLocally(lease: Lease, at: number): boolean {
    if (lease.left > 0) return false;
    return lease.askedAt === null ? lease.next < at - MAX_LEASE_MS : at - lease.askedAt >= STALLED_MS;
  }
  const lateMs = () => Math.max(MIN_LATE_MS, LATE_ROUND_TRIPS * rttMs);

  return {
    healthy,
    start() {
      redis.connect().catch(() => undefined);
    },
    reserveNow(keyHash) {
      if (!healthy()) return local.reserveNow(keyHash);
      const at = now();
      const lease = leaseOf(keyHash);
      // Slots that passed unspent (more than one interval ago) are gone: spending them late would be a
      // burst the fleet did not plan, and a quota counted in fixed windows would refuse it.
      if (lease.left > 0 && lease.next < at - lease.intervalMs) {
        const passed = Math.min(lease.left, Math.floor((at - lease.next) / lease.intervalMs));
        lease.left -= passed;
        lease.next += passed * lease.intervalMs;
      }
      const locally = spendsLocally(lease, at);
      topUp(keyHash, lease, at);
      if (locally) return local.reserveNow(keyHash);
      if (lease.left === 0 || lease.next > at) return false;
      lease.next += lease.intervalMs;
      lease.left -= 1;
      return true;
    },
    learn(keyHash, lesson: BudgetLesson) {
      local.learn(keyHash, lesson);
      const lease = leases.peek(keyHash);
      // A 429 makes the slots leased before it wrong: the next slice comes at the pace it taught.
      if (lease && lesson.kind !== 'faster') lease.left = 0;
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
      // Waiting for a lease: ask again when it is due, or late.
      return Math.max(at, lease.left > 0 ? lease.next : (lease.askedAt ?? at) + lateMs());
    },
    async dispose() {
      if (redis.status === 'wait') redis.disconnect();
      else await redis.quit().catch(() => redis.disconnect());
    },
  };
}
