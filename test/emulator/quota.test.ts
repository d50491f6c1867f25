import { afterEach, describe, expect, it } from 'vitest';
import { createEmulator, type Emulator } from '../../src/emulator/emulator.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { RateLimitedError } from '../../src/upstream/errors.ts';
import { createTasksClient, type TasksClient } from '../../src/upstream/tasks-client.ts';
import { createManualClock } from '../helpers/clock.ts';

const KEY = 'sk-quota-emulator';

describe('the emulator per-key quota', () => {
  const clock = createManualClock(Date.UTC(2026, 10, 28, 12, 0, 0, 250));
  let emulator: Emulator;
  let client: TasksClient;

  afterEach(async () => {
    await client.close();
    await emulator.stop();
  });

  async function start(retryAfter: boolean) {
    emulator = createEmulator({ now: clock.now, rateLimit: { cap: 3, windowMs: 1_000, retryAfter } });
    client = createTasksClient({ baseUrl: await emulator.start(), now: clock.now });
  }

  const get = (path: string, key = KEY) => fetch(`${emulator.url}${path}`, { headers: { authorization: `Bearer ${key}` } });

  it('answers 429 quota_window_exceeded with window, used, cap and reset_at past the cap of a key', async () => {
    await start(false);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get('/tasks/task-none')).status);
    expect(statuses).toEqual([404, 404, 404, 429]);
    const refused = await get('/tasks/task-none');
    expect(refused.headers.get('retry-after')).toBeNull();
    expect(await refused.json()).toEqual({
      error: {
        code: 'quota_window_exceeded',
        message: expect.stringContaining('3'),
        window: '1s',
        used: 5,
        cap: 3,
        reset_at: Math.ceil(Date.UTC(2026, 10, 28, 12, 0, 1) / 1000),
      },
    });
    // Another key has its own window; the next window starts afresh.
    expect((await get('/tasks/task-none', 'sk-other')).status).toBe(404);
    clock.advance(750);
    expect((await get('/tasks/task-none')).status).toBe(404);
    expect(emulator.stats.rateLimited.get(KEY)).toBe(2);
    expect(emulator.stats.requests).toBe(7);
  });

  it('sends Retry-After when asked to, and the client reads the quota from the body', async () => {
    await start(true);
    const credential = createCredential(KEY);
    for (let i = 0; i < 3; i++) await client.getTask('task-none', credential).catch(() => undefined);
    const error = await client.getTask('task-none', credential).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error).toMatchObject({ retryAfterMs: 1_000, quota: { cap: 3, windowMs: 1_000 }, fromUpstream: true });
  });
});
