import type { Config } from '../config.ts';
import { createRedisTaskOwners } from './redis-task-owners.ts';
import { createRedisUserLimits } from './redis-user-limits.ts';
import { createMemoryTaskOwners, type TaskOwners } from './task-owners.ts';
import { anyLimit, createMemoryUserLimits, type UserLimits } from './user-limits.ts';

/** Where jwt mode keeps task owners and per-user counts. */
export interface UserStores {
  owners: TaskOwners;
  /** Null when no per-user limit is configured. */
  limits: UserLimits | null;
  dispose(): Promise<void>;
}

/**
 * The owners and limits stores: in Redis (shared by every replica) when
 * `config.redis` is set, else in this process (bounded). Nothing connects until first use.
 */
export function createUserStores(config: Config, now: () => number): UserStores {
  const { redis, users } = config;
  const settings = { maxActiveTasks: users.maxActiveTasks, submitsPerMinute: users.submitsPerMinute, dailySpend: users.dailySpend };
  const owners = redis ? createRedisTaskOwners({ redis }) : createMemoryTaskOwners({ now });
  const limits = !anyLimit(settings)
    ? null
    : redis
      ? createRedisUserLimits({ redis, settings, now })
      : createMemoryUserLimits({ settings, now });
  return {
    owners,
    limits,
    async dispose() {
      await Promise.all([owners.dispose(), limits?.dispose()]);
    },
  };
}
