import { ApolloClient, gql, HttpLink, InMemoryCache } from '@apollo/client';
import { RetryLink } from '@apollo/client/link/retry';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { readConfig } from '../src/config.ts';
import type { Emulator } from '../src/emulator/emulator.ts';
import { createGateway, type Gateway } from '../src/gateway.ts';
import { createLogger } from '../src/logger.ts';
import { eventually, settlesWithin } from './helpers/clock.ts';
import { track } from './helpers/leftovers.ts';
import { freePort, startEmulator } from './helpers/stack.ts';

const KEY = 'sk-restarts';
const WATCHERS_PER_TRANSPORT = 100;
const TASKS = 20;
const WATCH = 'subscription Watch($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status } } }';
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What one watcher saw: every status in order, whether its subscription completed, and any error. */
interface Watcher {
  statuses: string[];
  completed: boolean;
  error: unknown;
}

const watcher = (): Watcher => ({ statuses: [], completed: false, error: null });

describe('a rolling restart loses no watcher', () => {
  let emulator: Emulator;
  let port: number;
  const start = async (): Promise<Gateway> => {
    const config = readConfig({
      PORT: String(port),
      HOST: '127.0.0.1',
      UPSTREAM_URL: emulator.url,
      POLL_INTERVAL_MS: '20',
      POLL_MAX_INTERVAL_MS: '40',
      MAX_SUBSCRIPTIONS_PER_CONNECTION: String(WATCHERS_PER_TRANSPORT),
    });
    const gateway = createGateway({ config, upstreamUrl: emulator.url, logger: createLogger('silent') });
    const { stop } = gateway;
    Object.assign(gateway, { stop: track((graceMs?: number) => stop(graceMs)) });
    await gateway.start();
    return gateway;
  };
  beforeAll(async () => {
    emulator = await startEmulator({ queuedMs: 0, processingMs: 3_600_000 });
    port = await freePort();
  });
  afterAll(() => emulator.stop());

  it('over SSE (graphql-sse), multipart (Apollo Client with a RetryLink) and WebSocket (graphql-ws), each watcher ends with exactly one terminal state', {
    timeout: 180_000,
  }, async () => {
    const ids: string[] = [];
    for (let i = 0; i < TASKS; i++) {
      const answer = await fetch(`${emulator.url}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ model: 'veo3.1-fast' }),
      });
      const id = ((await answer.json()) as { task_id: string }).task_id;
      emulator.pin(id, 'processing', 40);
      ids.push(id);
    }
    let gateway = await start();
    const url = `http://127.0.0.1:${port}/graphql`;
    const headers = { authorization: `Bearer ${KEY}` };
    const quickRetry = async () => {
      await sleep(50);
    };

    // Each transport with its own client library and its documented way to come back.
    const sse = createSseClient({ url, headers, retryAttempts: 100, retry: quickRetry });
    track(() => sse.dispose());
    const ws = createWsClient({
      url: url.replace('http', 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: headers,
      retryAttempts: 100,
      retryWait: quickRetry,
      shouldRetry: () => true,
    });
    track(() => ws.dispose());
    const apollo = new ApolloClient({
      link: RetryLink.from([
        new RetryLink({ delay: { initial: 50, max: 100, jitter: false }, attempts: { max: 100, retryIf: (error) => !!error } }),
        new HttpLink({ uri: url, headers }),
      ]),
      cache: new InMemoryCache(),
      // One stream per watcher, as 100 browser tabs would hold.
      queryDeduplication: false,
    });
    track(() => apollo.stop());

    const watchers = { sse: [] as Watcher[], multipart: [] as Watcher[], ws: [] as Watcher[] };
    for (let i = 0; i < WATCHERS_PER_TRANSPORT; i++) {
      const variables = { id: ids[i % TASKS]! };
      const onSse = watcher();
      watchers.sse.push(onSse);
      sse.subscribe<any>(
        { query: WATCH, variables },
        {
          next: ({ data }) => onSse.statuses.push(data.taskUpdated.status),
          error: (error) => (onSse.error = error),
          complete: () => (onSse.completed = true),
        },
      );
      const onWs = watcher();
      watchers.ws.push(onWs);
      ws.subscribe<any>(
        { query: WATCH, variables },
        {
          next: ({ data }) => onWs.statuses.push(data.taskUpdated.status),
          error: (error) => (onWs.error = error),
          complete: () => (onWs.completed = true),
        },
      );
      const onMultipart = watcher();
      watchers.multipart.push(onMultipart);
      apollo.subscribe<any>({ query: gql(WATCH), variables, fetchPolicy: 'no-cache' }).subscribe({
        next: ({ data }) => onMultipart.statuses.push(data.taskUpdated.status),
        error: (error) => (onMultipart.error = error),
        complete: () => (onMultipart.completed = true),
      });
    }
    const all = () => [...watchers.sse, ...watchers.multipart, ...watchers.ws];
    await eventually(() => expect(all().filter((w) => w.statuses.length > 0)).toHaveLength(3 * WATCHERS_PER_TRANSPORT), 45_000);

    // A stop that waited out a 120 s grace because streams are open would fail this liveness bound.
    await settlesWithin(gateway.stop(120_000), 45_000);
    expect(all().filter((w) => w.completed || w.error)).toEqual([]);

    gateway = await start();
    // Every watcher subscribes again on the restarted gateway; only then do the tasks end.
    await eventually(() => expect(gateway.poller.stats().subscribers).toBe(3 * WATCHERS_PER_TRANSPORT), 45_000);
    for (const id of ids) emulator.pin(id, 'completed', 100);
    await eventually(() => expect(all().filter((w) => w.completed)).toHaveLength(3 * WATCHERS_PER_TRANSPORT), 45_000);

    for (const [transport, list] of Object.entries(watchers)) {
      for (const seen of list) {
        expect({ transport, error: seen.error }).toEqual({ transport, error: null });
        expect({ transport, terminal: seen.statuses.filter((status) => TERMINAL.has(status)) }).toEqual({
          transport,
          terminal: ['COMPLETED'],
        });
        expect(seen.statuses.at(-1)).toBe('COMPLETED');
      }
    }
    await gateway.stop();
  });
});
