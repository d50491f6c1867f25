import { describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../../src/config.ts';

const JWT = { AUTH_MODE: 'jwt', AUTH_HS256_SECRET: 'x'.repeat(32), AUTH_ISSUER: 'https://id.example', AUTH_AUDIENCE: 'api' };

describe('per-user configuration', () => {
  it('reads USER_MAX_ACTIVE_TASKS, USER_SUBMITS_PER_MINUTE, USER_DAILY_SPEND and USER_MAX_WATCHED_TASKS', () => {
    const config = readConfig({
      USER_MAX_ACTIVE_TASKS: '3',
      USER_SUBMITS_PER_MINUTE: '10',
      USER_DAILY_SPEND: '2500.5',
      USER_MAX_WATCHED_TASKS: '20',
    });
    expect(config.users).toEqual({ maxActiveTasks: 3, submitsPerMinute: 10, dailySpend: 2500.5, maxWatchedTasks: 20 });
  });

  it('defaults MAX_LOOPS_PER_KEY to MAX_LOOPS in jwt mode (one key serves every user), to 1 000 in key mode', () => {
    expect(readConfig({ ...JWT, UPSTREAM_API_KEY: 'sk-server' }).maxLoopsPerKey).toBe(100_000);
    expect(readConfig({ ...JWT, UPSTREAM_API_KEY: 'sk-server', MAX_LOOPS: '5000' }).maxLoopsPerKey).toBe(5_000);
    expect(readConfig({ ...JWT, UPSTREAM_API_KEY: 'sk-server', MAX_LOOPS_PER_KEY: '300' }).maxLoopsPerKey).toBe(300);
    expect(readConfig({}).maxLoopsPerKey).toBe(1_000);
  });

  it.each([
    ['USER_MAX_ACTIVE_TASKS', '0'],
    ['USER_SUBMITS_PER_MINUTE', 'lots'],
    ['USER_DAILY_SPEND', '-5'],
    ['USER_DAILY_SPEND', '0'],
    ['USER_MAX_WATCHED_TASKS', '0'],
  ])('refuses %s=%s with one line naming it', (name, value) => {
    expect(() => readConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => readConfig({ [name]: value })).toThrow(new RegExp(`^${name} must`));
  });
});
