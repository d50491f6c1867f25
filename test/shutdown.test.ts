import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { spawnEntry } from './helpers/spawn.ts';
import { startEmulator } from './helpers/stack.ts';
import { openSocket } from './helpers/ws-client.ts';

describe('graceful shutdown', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'on %s closes WebSockets with 1001 and cuts SSE streams without `complete`, for clients to come back, and exits 0',
    async (signal) => {
      const gateway = spawnEntry('src/main.ts', [], { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' });
      const [, url] = (await gateway.waitFor(/GraphiQL at (http:\/\/[\d.:]+)\/graphql/)) as unknown as [string, string];
      const submit = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'mutation { submitTask(input: { model: "veo3.1-fast" }) { ... on BaseTask { id } } }' }),
      });
      const id = ((await submit.json()) as any).data.submitTask.id;

      const socket = openSocket(`${url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
      const messages: any[] = [];
      socket.on('message', (data) => messages.push(JSON.parse(data.toString())));
      await once(socket, 'open');
      socket.send(JSON.stringify({ type: 'connection_init', payload: {} }));
      // The protocol asks a client to wait for the acknowledgement before it subscribes.
      await once(socket, 'message');
      socket.send(
        JSON.stringify({
          id: 'w',
          type: 'subscribe',
          payload: { query: 'subscription($id: ID!) { taskUpdated(id: $id) { __typename } }', variables: { id } },
        }),
      );
      const sse = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ query: 'subscription($id: ID!) { taskUpdated(id: $id) { __typename } }', variables: { id } }),
      });
      const reader = sse.body!.getReader();
      let received = '';
      while (!received.includes('QueuedTask')) received += new TextDecoder().decode((await reader.read()).value);
      while (!messages.some((message) => message.type === 'next')) await new Promise((resolve) => setTimeout(resolve, 10));

      const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
      gateway.child.kill(signal);
      const [code] = await once(gateway.child, 'exit');
      expect(code).toBe(0);
      expect(await closed).toBe(1001);
      // No `complete`: the subscription is not over, the client resubscribes where it reconnects.
      expect(messages.map((message) => message.type)).toEqual(['connection_ack', 'next']);
      // Cut, not ended: graphql-sse's client retries a stream that closes without `complete`.
      let rest = '';
      const cut = await (async () => {
        try {
          for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
          return false;
        } catch {
          return true;
        }
      })();
      expect({ cut, rest }).toEqual({ cut: true, rest: expect.not.stringContaining('event: complete') });
      const lines = gateway
        .output()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      expect(lines.map((line) => line.msg)).toEqual(expect.arrayContaining(['shutting down', 'task-gateway stopped']));
    },
  );

  it('answers a submitTask(waitSeconds: 30) in flight at SIGTERM with the task as it is now, then exits 0 within the deadline', {
    timeout: 60_000,
  }, async () => {
    // An upstream of the test's own, so the test sees when the waiting submit has reached it.
    const emulator = await startEmulator();
    const upstreamUrl = emulator.url;
    const gateway = spawnEntry('src/main.ts', [], { PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: upstreamUrl, UPSTREAM_API_KEY: 'sk-wait' });
    try {
      const [, url] = (await gateway.waitFor(/GraphiQL at (http:\/\/[\d.:]+)\/graphql/)) as unknown as [string, string];
      const answer = fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          query: 'mutation { submitTask(input: { model: "veo3.1-fast", waitSeconds: 30 }) { __typename ... on BaseTask { id status } } }',
        }),
      })
        .then(async (response) => (await response.json()) as any)
        .catch((error: Error) => ({ errors: [{ message: `no answer: ${error.message}` }] }));
      while (emulator.stats.submits === 0) await new Promise((resolve) => setTimeout(resolve, 20));

      const signalledAt = Date.now();
      gateway.child.kill('SIGTERM');
      const [code] = await once(gateway.child, 'exit');
      expect(code).toBe(0);
      // The deadline is 10 s; the answer does not wait for it.
      expect(Date.now() - signalledAt).toBeLessThan(10_000);
      const { data, errors } = await answer;
      expect(errors).toBeUndefined();
      expect(data.submitTask).toMatchObject({ __typename: 'QueuedTask', status: 'QUEUED', id: expect.stringMatching(/^task-/) });
      // The task the upstream created and charged for, not a second one: the second ask carried the same idempotency key.
      const upstreamTask = await fetch(`${upstreamUrl}/tasks/${data.submitTask.id}`, { headers: { authorization: 'Bearer sk-wait' } });
      expect(upstreamTask.status).toBe(200);
    } finally {
      gateway.child.kill('SIGKILL');
      await emulator.stop();
    }
  });
});
