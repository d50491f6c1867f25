import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { redisAt } from '../../src/lib/redis-config.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { createMemoryCallbackTokens } from '../../src/webhooks/callback-tokens.ts';
import { createRedisCallbackTokens } from '../../src/webhooks/redis-callback-tokens.ts';
import { createManualClock, eventually } from '../helpers/clock.ts';

const credential = createCredential('sk-callback-tokens');

describe('the memory callback-token store', () => {
  it('names the credential and task of a bound token, and nothing for an unbound or unknown one', async () => {
    const tokens = createMemoryCallbackTokens();
    const issued = tokens.issue('token-bound', credential);
    tokens.issue('token-unbound', credential);
    expect(await tokens.find('token-bound')).toBeNull();
    issued.bind('task-1');
    expect(await tokens.find('token-bound')).toEqual({ credential, taskId: 'task-1' });
    expect(await tokens.find('token-unbound')).toBeNull();
    expect(await tokens.find('token-never-issued')).toBeNull();
  });

  it('forgets a token once its time is up', async () => {
    const clock = createManualClock();
    const tokens = createMemoryCallbackTokens({ ttlMs: 1_000, now: clock.now });
    tokens.issue('token-1', credential).bind('task-1');
    clock.advance(999);
    expect(await tokens.find('token-1')).not.toBeNull();
    clock.advance(1);
    expect(await tokens.find('token-1')).toBeNull();
  });

  it('keeps at most maxTokens tokens, forgetting the one used longest ago, however many submissions there are', async () => {
    const tokens = createMemoryCallbackTokens({ maxTokens: 100 });
    for (let i = 0; i < 1_000; i++) {
      tokens.issue(`token-${i}`, credential).bind(`task-${i}`);
      // A callback on the first token keeps it among the most recently used.
      if (i > 0) await tokens.find('token-0');
    }
    expect(await tokens.find('token-0')).toEqual({ credential, taskId: 'task-0' });
    expect(await tokens.find('token-1')).toBeNull();
    expect(await tokens.find('token-900')).toBeNull();
    expect(await tokens.find('token-901')).toEqual({ credential, taskId: 'task-901' });
  });
});

describe('the Redis callback-token store', () => {
  it('lets another replica find the loop of a token it did not issue, with no token or key in Redis', async () => {
    const prefix = `test-callback-${randomUUID()}`;
    const issuer = createRedisCallbackTokens({ redis: redisAt(inject('redisUrl')), prefix });
    const other = createRedisCallbackTokens({ redis: redisAt(inject('redisUrl')), prefix });
    const redis = new Redis(inject('redisUrl'));
    try {
      issuer.start();
      other.start();
      const token = `token-${randomUUID()}`;
      await eventually(async () => {
        issuer.issue(token, credential).bind('task-1');
        expect(await other.find(token)).toEqual({ loopKey: `${credential.hash}:task-1` });
      });
      expect(await issuer.find(token)).toEqual({ credential, taskId: 'task-1' });
      const keys = await redis.keys(`${prefix}:*`);
      expect(keys).toHaveLength(1);
      expect(keys[0]).not.toContain(token);
      expect(await redis.get(keys[0]!)).not.toContain('sk-callback-tokens');
      expect(await redis.pttl(keys[0]!)).toBeGreaterThan(23 * 3_600_000);
    } finally {
      await issuer.dispose();
      await other.dispose();
      redis.disconnect();
    }
  });
});
