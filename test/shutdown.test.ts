import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { spawnEntry } from './helpers/spawn.ts';
import { openSocket } from './helpers/ws-client.ts';

describe('graceful shutdown', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'on %s closes WebSockets with 1001 for clients to reconnect, completes SSE streams and exits 0',
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
      let rest = '';
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
      expect(rest).toContain('event: complete');
      const lines = gateway
        .output()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      expect(lines.map((line) => line.msg)).toEqual(expect.arrayContaining(['shutting down', 'task-gateway stopped']));
    },
  );
});
