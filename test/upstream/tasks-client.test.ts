import { getEventListeners } from 'node:events';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createCredential } from '../../src/upstream/credential.ts';
import {
  BadRequestError,
  InsufficientBalanceError,
  InvalidTaskIdError,
  RateLimitedError,
  TaskNotCancellableError,
  TaskNotFoundError,
  UnauthenticatedError,
  UpstreamInvalidError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../../src/upstream/errors.ts';
import { createTasksClient, type TasksClient } from '../../src/upstream/tasks-client.ts';
import { eventually, settlesWithin } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';
import { json, type StandIn, startStandIn } from '../helpers/stand-in.ts';

const key = createCredential('sk-client-test');
const task = { task_id: 'task-1', status: 'queued', model: 'm', action: 'generate', created_at: 1_720_000_000, progress: '' };
let standIn: StandIn;
let client: TasksClient;

/** A stand-in answering with `handler`, and a client of it (both disposed after the test). */
async function against(handler: Parameters<typeof startStandIn>[0], timeoutMs = 2_000) {
  standIn = await startStandIn(handler);
  client = createTasksClient({ baseUrl: standIn.url, timeoutMs, now: () => 1_720_000_000_000 });
  track(() => client.close());
}

describe('tasks client', () => {
  it('sends the bearer key to /v1/tasks/{id} and normalises the task (ids that would need encoding are refused, below)', async () => {
    await against((_request, response) => json(response, 200, task));
    const snapshot = await client.getTask('task-1', key);
    expect(snapshot.status).toBe('QUEUED');
    expect(standIn.requests[0]).toMatchObject({ method: 'GET', url: '/v1/tasks/task-1' });
    expect(standIn.requests[0]!.headers.authorization).toBe('Bearer sk-client-test');
  });

  it('refuses invalid ids before any request', async () => {
    await against((_request, response) => json(response, 200, task));
    for (const id of ['', '../secrets', 'a/b', 'a?x=1', '%2e%2e', 'a b', 'x'.repeat(129), 'tâche', '.hidden', 'a\nb']) {
      await expect(client.getTask(id, key)).rejects.toBeInstanceOf(InvalidTaskIdError);
      await expect(client.cancelTask(id, key)).rejects.toBeInstanceOf(InvalidTaskIdError);
    }
    expect(standIn.requests).toHaveLength(0);
  });

  it('sends model-specific params flat, with Idempotency-Key and Prefer: wait', async () => {
    await against((_request, response) => json(response, 200, task));
    await client.submitTask(
      {
        model: 'veo3.1-fast',
        prompt: 'a cat',
        params: { duration: 8 },
        idempotencyKey: 'idem-1',
        waitSeconds: 5,
        callbackUrl: 'https://gw/hook',
      },
      key,
    );
    const request = standIn.requests[0]!;
    expect(request.url).toBe('/v1/tasks');
    expect(request.headers['idempotency-key']).toBe('idem-1');
    expect(request.headers.prefer).toBe('wait=5');
    expect(JSON.parse(request.body)).toEqual({ duration: 8, model: 'veo3.1-fast', prompt: 'a cat', callback_url: 'https://gw/hook' });
  });

  it.each([
    ['401', 401, { error: { message: 'bad key', code: 'invalid_api_key' } }, UnauthenticatedError],
    ['402', 402, { error: { message: 'poor', code: 'insufficient_balance' } }, InsufficientBalanceError],
    ['404', 404, { error: { message: 'nope', code: 'task_not_found' } }, TaskNotFoundError],
    ['400', 400, { error: { message: 'extra is not allowed', code: 'capability_violation', param: 'extra' } }, BadRequestError],
    ['500', 500, { error: { message: 'boom' } }, UpstreamUnavailableError],
    ['503 with numeric code', 503, { error: { message: 'later', code: 503, type: 'server_error' } }, UpstreamUnavailableError],
    ['418', 418, {}, UpstreamInvalidError],
  ])('types a %s answer', async (_name, status, body, type) => {
    await against((_request, response) => json(response, status, body));
    await expect(client.getTask('task-1', key)).rejects.toBeInstanceOf(type);
  });

  it('types a 400 task_not_cancellable on cancel', async () => {
    await against((_request, response) => json(response, 400, { error: { message: 'no', code: 'task_not_cancellable' } }));
    await expect(client.cancelTask('task-1', key)).rejects.toBeInstanceOf(TaskNotCancellableError);
  });

  it('reads the wait of a 429 from Retry-After seconds, Retry-After dates and reset_at', async () => {
    const answers: Array<{ headers: Record<string, string>; body: unknown }> = [
      { headers: { 'retry-after': '7' }, body: {} },
      { headers: { 'retry-after': new Date(1_720_000_030_000).toUTCString() }, body: {} },
      { headers: {}, body: { error: { message: 'window', code: 'quota_window_exceeded', reset_at: 1_720_000_045 } } },
      { headers: {}, body: { error: { message: 'slow down' } } },
    ];
    let next = 0;
    await against((_request, response) => {
      const answer = answers[next++]!;
      json(response, 429, answer.body, answer.headers);
    });
    const waits = [];
    for (let i = 0; i < answers.length; i++) {
      const error = await client.getTask('task-1', key).catch((caught) => caught);
      expect(error).toBeInstanceOf(RateLimitedError);
      waits.push((error as RateLimitedError).retryAfterMs);
    }
    expect(waits).toEqual([7_000, 30_000, 45_000, null]);
  });

  it('types a 502 with an HTML body as unavailable, truncated or wrongly shaped JSON as invalid', async () => {
    const answers: Array<(response: import('node:http').ServerResponse) => void> = [
      (response) => response.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>Bad gateway</body></html>'),
      (response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"task_id":"task-1","sta'),
      (response) => json(response, 200, { data: [task] }),
    ];
    let next = 0;
    await against((_request, response) => answers[next++]!(response));
    await expect(client.getTask('task-1', key)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    await expect(client.getTask('task-1', key)).rejects.toBeInstanceOf(UpstreamInvalidError);
    await expect(client.getTask('task-1', key)).rejects.toBeInstanceOf(UpstreamInvalidError);
  });

  it('gives up on a server that never answers within the deadline', async () => {
    let hungUp = false;
    await against((_request, response) => {
      response.on('close', () => {
        hungUp = !response.writableFinished;
      });
    }, 300);
    // A 300 ms deadline against a 5 s liveness bound; without a deadline the request would wait for ever.
    await expect(settlesWithin(client.getTask('task-1', key), 5_000)).rejects.toBeInstanceOf(UpstreamTimeoutError);
    // Giving up closes the request: the server sees its client go.
    await eventually(() => expect(hungUp).toBe(true));
  });

  it('types a reset connection and a refused one as unavailable', async () => {
    await against((_request, response) => {
      response.socket?.destroy();
    });
    await expect(client.getTask('task-1', key)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    const url = standIn.url;
    await standIn.stop();
    const refused = createTasksClient({ baseUrl: url, timeoutMs: 2_000 });
    track(() => refused.close());
    await expect(refused.getTask('task-1', key)).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });

  it('refuses an answer larger than its body limit', async () => {
    await against((_request, response) => json(response, 200, { ...task, padding: 'x'.repeat(2 << 20) }));
    await expect(client.getTask('task-1', key)).rejects.toBeInstanceOf(UpstreamInvalidError);
  });

  it('refuses a chunked answer (no declared length) where it passes the body limit', async () => {
    let closed = false;
    await against((_request, response) => {
      response.on('close', () => {
        closed = true;
      });
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write(`{"task_id":"task-1","padding":"`);
      // 2 MiB in 64 KiB chunks, against the default bound of 1 MiB.
      for (let i = 0; i < 32; i++) response.write('x'.repeat(64 * 1024));
      response.end('"}');
    });
    const error = (await client.getTask('task-1', key).catch((caught) => caught)) as Error;
    expect(error).toBeInstanceOf(UpstreamInvalidError);
    expect(error.message).toContain('exceeded');
    // The connection of an oversized answer is not read to its end: it is closed.
    await eventually(() => expect(closed).toBe(true));
  });

  it('reads a task whose answer starts with a UTF-8 byte order mark', async () => {
    await against((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(task))]));
    });
    expect((await client.getTask('task-1', key)).id).toBe('task-1');
  });

  it('gives up on an answer whose body trickles in past the deadline', async () => {
    let hungUp = false;
    await against((_request, response) => {
      response.on('close', () => {
        hungUp = !response.writableFinished;
      });
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write('{"task_id":"task-1",');
      // A byte every 100 ms: each gap within the deadline, the whole answer never.
      const timer = setInterval(() => response.write(' '), 100);
      response.on('close', () => clearInterval(timer));
    }, 400);
    await expect(settlesWithin(client.getTask('task-1', key), 5_000)).rejects.toBeInstanceOf(UpstreamTimeoutError);
    await eventually(() => expect(hungUp).toBe(true));
  });

  it('refuses a submit whose body cannot be serialised, leaving nothing listening to its signal', async () => {
    let requests = 0;
    await against((_request, response) => {
      requests += 1;
      json(response, 200, task);
    });
    const controller = new AbortController();
    // A BigInt has no JSON form.
    await expect(client.submitTask({ model: 'm', params: { n: 1n } }, key, { signal: controller.signal })).rejects.toThrow(TypeError);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(requests).toBe(0);
  });

  it('never puts the key into an error message, even when the upstream echoes it', async () => {
    await against((_request, response) => json(response, 400, { error: { message: 'key sk-client-test is not allowed here', code: 'x' } }));
    const error = (await client.getTask('task-1', key).catch((caught) => caught)) as Error;
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error.message).not.toContain('sk-client-test');
    expect(JSON.stringify(key)).not.toContain('sk-client-test');
  });

  it('leaves no fragment of the key in a long message that echoes it across the length cut', async () => {
    // The key straddles character 300, where the message is cut.
    const message = `${'x'.repeat(295)}sk-client-test and more`;
    await against((_request, response) => json(response, 400, { error: { message, code: 'x' } }));
    const error = (await client.getTask('task-1', key).catch((caught) => caught)) as Error;
    expect(error.message).not.toContain('sk-cl');
    expect(error.message.length).toBeLessThanOrEqual(300);
  });

  it("rejects with the caller's reason when the caller aborts", async () => {
    await against(() => undefined);
    const controller = new AbortController();
    const pending = client.getTask('task-1', key, { signal: controller.signal });
    controller.abort(new Error('watcher left'));
    await expect(pending).rejects.toThrow('watcher left');
  });
});

describe('a credential', () => {
  it('shows its hash, never its key, however it is printed or copied', () => {
    const credential = createCredential('sk-never-printed');
    expect(credential.apiKey).toBe('sk-never-printed');
    expect(credential.hash).toMatch(/^[0-9a-f]{64}$/);
    const printed = [JSON.stringify(credential), inspect(credential), JSON.stringify({ ...credential }), Object.keys(credential).join()];
    for (const text of printed) expect(text).not.toContain('sk-never-printed');
    expect(inspect(credential)).toBe(`Credential(${credential.hash.slice(0, 12)})`);
  });
});
