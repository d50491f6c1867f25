import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { schema } from '../../src/executable-schema.ts';
import { createExecutor } from '../../src/graphql/executor.ts';
import { createGraphQLWebSocketServer, type GraphQLWebSocketServer } from '../../src/http/websocket-server.ts';
import { createTaskPoller } from '../../src/pollers/task-poller.ts';
import { createMemoryRecentTasks } from '../../src/recent-tasks/recent-tasks.ts';
import { createTasksClient } from '../../src/upstream/tasks-client.ts';
import { eventually } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';
import { openSocket } from '../helpers/ws-client.ts';

describe('WebSocket keep-alive', () => {
  const httpServer = createServer();
  let webSockets: GraphQLWebSocketServer;
  let url: string;
  beforeAll(async () => {
    const tasksClient = createTasksClient({ baseUrl: 'http://127.0.0.1:1/v1' });
    track(() => tasksClient.close());
    const poller = createTaskPoller({ client: tasksClient });
    track(() => poller.dispose());
    webSockets = createGraphQLWebSocketServer({
      httpServer,
      schema,
      executor: createExecutor({ schema }),
      services: {
        tasksClient,
        poller,
        recentTasks: createMemoryRecentTasks(),
        defaultCredential: null,
        webhooks: { prepare: () => null },
        now: Date.now,
        stopping: new AbortController().signal,
      },
      // Long enough for a pong on a busy machine: the live socket must not look silent.
      keepAliveMs: 1_000,
    });
    webSockets.start();
    track(async () => {
      await webSockets.dispose();
      await new Promise((resolve) => httpServer.close(resolve));
    });
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    url = `ws://127.0.0.1:${(httpServer.address() as AddressInfo).port}/graphql`;
  });

  it('drops a socket that stops answering pings, and keeps one that answers', async () => {
    const silent = openSocket(url, 'graphql-transport-ws', { autoPong: false });
    const lively = openSocket(url, 'graphql-transport-ws');
    await Promise.all([once(silent, 'open'), once(lively, 'open')]);
    for (const socket of [silent, lively])
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer sk-alive' } }));
    const [code] = await once(silent, 'close');
    // Terminated, not closed: the client sees an abnormal closure.
    expect(code).toBe(1006);
    expect(lively.readyState).toBe(WebSocket.OPEN);
    await eventually(() => expect(webSockets.connections()).toBe(1));
    lively.close();
  });
});
