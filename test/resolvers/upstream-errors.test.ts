import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { json, type StandIn, startStandIn } from '../helpers/stand-in.ts';
import { connectWs } from '../helpers/ws-client.ts';

/** Each fault the stand-in serves, chosen by the task id asked for. */
const faults: Record<string, (response: ServerResponse) => void> = {
  'task-401': (response) => json(response, 401, { error: { message: 'Invalid key', code: 'invalid_api_key' } }),
  'task-402': (response) => json(response, 402, { error: { message: 'Insufficient balance', code: 'insufficient_balance' } }),
  'task-400': (response) =>
    json(response, 400, { error: { message: 'resolution is not supported', code: 'invalid_request', param: 'resolution' } }),
  'task-429': (response) => json(response, 429, { error: { message: 'Too many', code: 'rate_limited' } }, { 'retry-after': '3' }),
  'task-500': (response) => json(response, 500, { error: { message: 'internal failure at 10.0.0.7:5432', code: 500 } }),
  'task-502': (response) => response.writeHead(502, { 'content-type': 'text/html' }).end('<html>nginx at 10.1.2.3</html>'),
  'task-garbage': (response) => response.writeHead(200).end('{"task_id": "task-garbage", "st'),
  'task-shape': (response) => json(response, 200, { ok: true }),
  'task-reset': (response) => response.socket?.destroy(),
  'task-hang': () => undefined,
};

describe('typed upstream failures as GraphQL errors', () => {
  let standIn: StandIn;
  let stack: Stack;
  beforeAll(async () => {
    standIn = await startStandIn((request, response) => {
      const id = decodeURIComponent(request.url.split('/')[3] ?? '');
      if (id.startsWith('task-ok-')) {
        return json(response, 200, { task_id: id, status: 'processing', model: 'm', progress: 40, created_at: 1_720_000_000 });
      }
      faults[id]?.(response);
    });
    stack = await startStack({ upstreamUrl: standIn.url, env: { UPSTREAM_TIMEOUT_MS: '300' } });
  });
  afterAll(async () => {
    await stack.stop();
    await standIn.stop();
  });

  it.each([
    ['task-401', 'UNAUTHENTICATED'],
    ['task-402', 'INSUFFICIENT_BALANCE'],
    ['task-400', 'BAD_USER_INPUT'],
    ['task-429', 'RATE_LIMITED'],
    ['task-500', 'UPSTREAM_UNAVAILABLE'],
    ['task-502', 'UPSTREAM_UNAVAILABLE'],
    ['task-garbage', 'UPSTREAM_INVALID'],
    ['task-shape', 'UPSTREAM_INVALID'],
    ['task-reset', 'UPSTREAM_UNAVAILABLE'],
    ['task-hang', 'TIMEOUT'],
  ])('maps %s to %s with a safe message', async (id, code) => {
    // A key of its own per case: a 401 makes its key fail fast, a 429 pauses its key.
    const { data, errors } = await stack.gql(`query($id: ID!) { task(id: $id) { __typename } }`, { id }, `sk-secret-key-123-${id}`);
    expect(data?.task).toBeNull();
    expect(errors).toHaveLength(1);
    expect(errors![0]!.extensions?.code).toBe(code);
    expect(errors![0]!.path).toEqual(['task']);
    const text = JSON.stringify(errors);
    for (const leak of ['sk-secret-key-123', '10.0.0.7', '10.1.2.3', '127.0.0.1', 'stack', 'at ']) expect(text).not.toContain(leak);
  });

  it('tells a rate-limited caller how long to wait', async () => {
    const { errors } = await stack.gql(`{ task(id: "task-429") { __typename } }`, {}, 'sk-a');
    expect(errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 3_000 });
  });

  it('keeps one failing entry of tasks from failing the others', async () => {
    // A 401 is the key's, not the entry's: it fails the key's later reads at once (test/quota.test.ts), so a 402 here;
    // and a key of its own, since the 429 above paused the budget of `sk-a`.
    const { data, errors } = await stack.gql(
      `{ tasks(ids: ["task-ok-1", "task-500", "task-ok-2", "task-402", "task-ok-3"]) { __typename ... on BaseTask { id status progress } } }`,
      {},
      'sk-entries',
    );
    const healthy = (id: string) => ({ __typename: 'ProcessingTask', id, status: 'PROCESSING', progress: 40 });
    expect(data.tasks).toEqual([healthy('task-ok-1'), null, healthy('task-ok-2'), null, healthy('task-ok-3')]);
    expect(errors!.map((error) => [error.path, error.extensions?.code])).toEqual([
      [['tasks', 1], 'UPSTREAM_UNAVAILABLE'],
      [['tasks', 3], 'INSUFFICIENT_BALANCE'],
    ]);
  });
});

describe('an unexpected failure', () => {
  // A clock that breaks on demand: the gateway's injected dependency failing in a way no typed error describes.
  let broken = false;
  const secret = 'clock failed at 10.0.0.7:6379 with sk-secret-key-123';
  const now = () => {
    if (broken) throw new TypeError(secret);
    return Date.now();
  };
  const lines: string[] = [];
  let stack: Stack;
  beforeAll(async () => {
    const sink = { write: (line: string) => void lines.push(line) };
    stack = await startStack({ now, emulator: { queuedMs: 0, processingMs: 0 }, logger: createLogger('error', sink) });
  });
  afterAll(async () => {
    broken = false;
    await stack.stop();
  });

  it('reaches the client as INTERNAL_SERVER_ERROR with nothing of its details, and is logged', async () => {
    const { data } = await stack.gql(`mutation { submitTask(input: { model: "m" }) { ... on BaseTask { id } } }`, {}, 'sk-mask');
    const id = data.submitTask.id as string;
    const read = `query($id: ID!) { task(id: $id) { __typename } }`;
    // Finished at once: the terminal cache keeps it, and reading that cache asks the clock.
    expect((await stack.gql(read, { id }, 'sk-mask')).data.task.__typename).toBe('CompletedTask');
    broken = true;
    const http = await stack.gql(`query($id: ID!) { task(id: $id) { __typename } }`, { id }, 'sk-mask');
    const client = connectWs(stack.gatewayUrl, 'sk-mask');
    const ws = await new Promise<any>((resolve, reject) => {
      client.subscribe(
        { query: `query($id: ID!) { task(id: $id) { __typename } }`, variables: { id } },
        { next: resolve, error: reject, complete: () => undefined },
      );
    });
    await client.dispose();
    broken = false;
    for (const result of [http, ws]) {
      expect(result.errors).toHaveLength(1);
      expect(result.errors[0]).toMatchObject({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
      const text = JSON.stringify(result);
      for (const leak of ['sk-secret-key-123', '10.0.0.7', 'TypeError', 'stack', 'at ']) expect(text).not.toContain(leak);
    }
    // The operator still learns what happened.
    expect(lines.some((line) => line.includes('unexpected error') && line.includes('10.0.0.7'))).toBe(true);
  });
});
