import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createManualClock, createManualScheduler, eventually, settlesWithin } from '../helpers/clock.ts';
import { startIdentityProvider } from '../helpers/identity-provider.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import { freePort, startStack } from '../helpers/stack.ts';
import { json, type RecordedRequest, startStandIn } from '../helpers/stand-in.ts';

const TASK_ID = 'task-owned-0001';
const SUBMIT = `mutation($key: String) { submitTask(input: { model: "gpt-image-2", prompt: "fox", idempotencyKey: $key }) { __typename ... on BaseTask { id } } }`;
const TASK = `query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id } } }`;
const task = { task_id: TASK_ID, status: 'queued', model: 'gpt-image-2', action: 'generate', progress: 0, created_at: 1_720_000_000 };

/** An upstream whose submits wait for `release()`; it answers the same task to every submit (as an idempotent one would). */
async function startHeldUpstream() {
  let release: () => void = () => undefined;
  let held: Promise<void> = Promise.resolve();
  const standIn = await startStandIn(async (request: RecordedRequest, response: ServerResponse) => {
    if (request.method === 'POST') await held;
    json(response, 200, task);
  });
  return {
    ...standIn,
    submits: () => standIn.requests.filter((request) => request.method === 'POST'),
    hold() {
      held = new Promise((resolve) => {
        release = resolve;
      });
      return () => release();
    },
  };
}

/** A jwt-mode gateway on its own redis-server (so the test may kill it), in front of a held upstream. */
async function start(options: { manualClock?: boolean } = {}) {
  const clock = options.manualClock ? createManualClock(Date.now()) : null;
  const scheduler = clock ? createManualScheduler(clock) : undefined;
  const redis = await startRedisServer(await freePort());
  const upstream = await startHeldUpstream();
  const idp = await startIdentityProvider({ now: clock?.now });
  const stack = await startStack({
    upstreamUrl: upstream.url,
    env: { ...idp.env, UPSTREAM_API_KEY: 'sk-server', REDIS_URL: redis.url },
    now: clock?.now,
    scheduler,
  });
  const token = async (sub: string) => idp.sign({ sub });
  return { redis, upstream, stack, token, scheduler };
}

describe('task owners on Redis, with Redis stopped (AUTH_MODE=jwt)', () => {
  it('submits nothing while Redis is down before the submit, with a clear retryable error', async () => {
    const { redis, upstream, stack, token } = await start();
    const alice = await token('alice');
    await redis.kill();
    const result = await stack.gql(SUBMIT, {}, alice);
    expect(result.errors?.[0]).toMatchObject({ extensions: { code: 'SERVICE_UNAVAILABLE' } });
    expect(upstream.submits()).toHaveLength(0);
  });

  it('loses nothing when Redis stops mid-submit: the owner is recorded once Redis is back, before the answer', async () => {
    const { redis, upstream, stack, token } = await start();
    const [alice, bob] = [await token('alice'), await token('bob')];
    const release = upstream.hold();
    const submitting = stack.gql(SUBMIT, {}, alice);
    await eventually(() => expect(upstream.submits()).toHaveLength(1));
    await redis.kill();
    release();
    await redis.start();
    const submitted = await settlesWithin(submitting, 20_000);
    expect(submitted).toEqual({ data: { submitTask: { __typename: 'QueuedTask', id: TASK_ID } } });
    // The submit carried an idempotency key the gateway made, so a retry could not create a second task.
    expect(upstream.submits()[0]!.headers['idempotency-key']).toMatch(/^u-[0-9a-f]{64}$/);
    expect((await stack.gql(TASK, { id: TASK_ID }, alice)).data.task).toEqual({ __typename: 'QueuedTask', id: TASK_ID });
    expect((await stack.gql(TASK, { id: TASK_ID }, bob)).data.task).toBeNull();
  });

  it('past the retry deadline answers SERVICE_UNAVAILABLE with the idempotency key; retrying with it records the same task', async () => {
    const { redis, upstream, stack, token, scheduler } = await start({ manualClock: true });
    const alice = await token('alice');
    const release = upstream.hold();
    let settled = false;
    const submitting = stack.gql(SUBMIT, {}, alice).finally(() => {
      settled = true;
    });
    await eventually(() => expect(upstream.submits()).toHaveLength(1));
    await redis.kill();
    release();
    // The owner record's retries wait on the injected scheduler: run them until the submit gives up.
    await eventually(() => {
      scheduler!.runNext();
      expect(settled).toBe(true);
    }, 20_000);
    const failed = await submitting;
    expect(failed.errors?.[0]).toMatchObject({ extensions: { code: 'SERVICE_UNAVAILABLE', idempotencyKey: expect.any(String) } });
    const key = failed.errors![0]!.extensions!.idempotencyKey as string;
    const sent = upstream.submits()[0]!.headers['idempotency-key'];
    await redis.start();
    const retried = await eventually(async () => {
      const result = await stack.gql(SUBMIT, { key }, alice);
      expect(result.errors).toBeUndefined();
      return result;
    }, 10_000);
    expect(retried.data.submitTask.id).toBe(TASK_ID);
    // The same key the first submit sent: the upstream answers the task it created then.
    expect(upstream.submits().at(-1)!.headers['idempotency-key']).toBe(sent);
    expect((await stack.gql(TASK, { id: TASK_ID }, alice)).data.task).toEqual({ __typename: 'QueuedTask', id: TASK_ID });
  });
});
