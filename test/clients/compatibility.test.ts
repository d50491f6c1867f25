import { ApolloClient, gql, HttpLink, InMemoryCache, split } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { fetchExchange, subscriptionExchange, Client as UrqlClient } from '@urql/core';
import { serverAudits } from 'graphql-http';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { readConfig } from '../../src/config.ts';
import type { Emulator } from '../../src/emulator/emulator.ts';
import { createGateway, type Gateway } from '../../src/gateway.ts';
import { createLogger } from '../../src/logger.ts';
import { createManualClock, eventually } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';
import { freePort, type Stack, startEmulator, startStack } from '../helpers/stack.ts';

const KEY = 'sk-clients';
const WATCH = `subscription Watch($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status progress } } }`;
const possibleTypes = {
  Task: ['QueuedTask', 'ProcessingTask', 'CompletedTask', 'FailedTask', 'CancelledTask', 'UnknownTask'],
  BaseTask: ['QueuedTask', 'ProcessingTask', 'CompletedTask', 'FailedTask', 'CancelledTask', 'UnknownTask'],
  TerminalTask: ['CompletedTask', 'FailedTask', 'CancelledTask'],
};

describe('the clients frontends use', () => {
  const clock = createManualClock();
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      emulator: { now: clock.now, queuedMs: 1_000, processingMs: 2_000 },
      now: clock.now,
      env: { POLL_INTERVAL_MS: '20', POLL_MAX_INTERVAL_MS: '40' },
    });
  });
  afterAll(() => stack.stop());

  const submit = async () =>
    (await stack.gql(`mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }`, {}, KEY)).data.submitTask
      .id as string;
  const wsUrl = () => `${stack.gatewayUrl.replace('http', 'ws')}/graphql`;

  /** Moves the task through its life once the watcher has its first state: processing, then completed. */
  async function runTask(states: string[]) {
    await eventually(() => expect(states).toEqual(['QUEUED:0']));
    clock.advance(2_000);
    await eventually(() => expect(states.at(-1)).toBe('PROCESSING:50'));
    clock.advance(2_000);
    await eventually(() => expect(states.at(-1)).toBe('COMPLETED:100'));
  }

  it('works with Apollo Client: query over HTTP, subscription over its graphql-ws link', async () => {
    const id = await submit();
    const wsClient = createWsClient({ url: wsUrl(), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${KEY}` } });
    track(() => wsClient.dispose());
    const http = new HttpLink({ uri: `${stack.gatewayUrl}/graphql`, headers: { authorization: `Bearer ${KEY}` } });
    const link = split(
      ({ query }) => {
        const definition = getMainDefinition(query);
        return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
      },
      new GraphQLWsLink(wsClient),
      http,
    );
    const apollo = new ApolloClient({ link, cache: new InMemoryCache({ possibleTypes }) });
    const { data } = await apollo.query<any>({
      query: gql`query Task($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status } } }`,
      variables: { id },
    });
    expect(data.task).toEqual({ __typename: 'QueuedTask', id, status: 'QUEUED' });
    const states: string[] = [];
    let completed = false;
    apollo.subscribe<any>({ query: gql(WATCH), variables: { id } }).subscribe({
      next: ({ data: event }) => states.push(`${event.taskUpdated.status}:${event.taskUpdated.progress}`),
      complete: () => {
        completed = true;
      },
    });
    await runTask(states);
    await eventually(() => expect(completed).toBe(true));
    expect(states.at(-1)).toBe('COMPLETED:100');
    expect(states.filter((state) => state.startsWith('COMPLETED'))).toHaveLength(1);
    apollo.stop();
    await wsClient.dispose();
  });

  it('works with urql: query over fetch, subscription through its subscription exchange', async () => {
    const id = await submit();
    // urql repeats its last result when a subscription ends; the wire is counted as well.
    let terminalMessages = 0;
    const wsClient = createWsClient({
      url: wsUrl(),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${KEY}` },
      on: {
        message: (message) => {
          if (message.type === 'next' && JSON.stringify(message.payload).includes('COMPLETED')) terminalMessages += 1;
        },
      },
    });
    track(() => wsClient.dispose());
    const urql = new UrqlClient({
      url: `${stack.gatewayUrl}/graphql`,
      fetchOptions: { headers: { authorization: `Bearer ${KEY}` } },
      exchanges: [
        fetchExchange,
        subscriptionExchange({
          forwardSubscription: (request) => ({
            subscribe: (sink) => ({ unsubscribe: wsClient.subscribe({ ...request, query: request.query ?? '' }, sink) }),
          }),
        }),
      ],
    });
    const query = await urql
      .query(`query Task($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status } } }`, { id })
      .toPromise();
    expect(query.data.task).toEqual({ __typename: 'QueuedTask', id, status: 'QUEUED' });
    const states: string[] = [];
    const subscription = urql.subscription(WATCH, { id }).subscribe((result) => {
      if (result.data) states.push(`${result.data.taskUpdated.status}:${result.data.taskUpdated.progress}`);
    });
    await runTask(states);
    await eventually(() => expect(states.at(-1)).toBe('COMPLETED:100'));
    expect(terminalMessages).toBe(1);
    expect(states.filter((state) => !state.startsWith('COMPLETED'))).toEqual(['QUEUED:0', 'PROCESSING:50']);
    subscription.unsubscribe();
    await wsClient.dispose();
  });

  it('works with the graphql-sse client', async () => {
    const id = await submit();
    const sse = createSseClient({ url: `${stack.gatewayUrl}/graphql`, headers: { authorization: `Bearer ${KEY}` }, retryAttempts: 0 });
    track(() => sse.dispose());
    const states: string[] = [];
    const done = (async () => {
      for await (const result of sse.iterate<any>({ query: WATCH, variables: { id } })) {
        states.push(`${result.data.taskUpdated.status}:${result.data.taskUpdated.progress}`);
      }
    })();
    await runTask(states);
    await done;
    expect(states.at(-1)).toBe('COMPLETED:100');
    expect(states.filter((state) => state.startsWith('COMPLETED'))).toHaveLength(1);
    sse.dispose();
  });

  it('passes every MUST of the GraphQL-over-HTTP audit', async () => {
    const results = await Promise.all(
      serverAudits({ url: `${stack.gatewayUrl}/graphql`, fetchFn: fetch }).map(async (audit) => ({
        name: audit.name,
        result: await audit.fn(),
      })),
    );
    const failedMusts = results.filter(({ name, result }) => name.startsWith('MUST') && result.status !== 'ok').map(({ name }) => name);
    expect(failedMusts).toEqual([]);
    const shoulds = results.filter(({ name }) => name.startsWith('SHOULD'));
    expect(shoulds.length).toBeGreaterThan(0);
    const failedShoulds = shoulds.filter(({ result }) => result.status !== 'ok').map(({ name }) => name);
    // docs/clients.md states these; keep it true.
    expect(failedShoulds).toEqual([]);
  });
});

describe('graphql-ws reconnect across a server restart', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  let upstreamUrl: string;
  let port: number;
  const start = async (): Promise<Gateway> => {
    const config = readConfig({
      PORT: String(port),
      HOST: '127.0.0.1',
      UPSTREAM_URL: upstreamUrl,
      POLL_INTERVAL_MS: '20',
      POLL_MAX_INTERVAL_MS: '40',
    });
    const gateway = createGateway({ config, upstreamUrl, now: clock.now, logger: createLogger('silent') });
    const { stop } = gateway;
    Object.assign(gateway, { stop: track(() => stop()) });
    await gateway.start();
    return gateway;
  };
  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 2_000 });
    upstreamUrl = emulator.url;
    port = await freePort();
  });
  afterAll(() => emulator.stop());

  it('resumes with the current state and delivers exactly one terminal event', async () => {
    let gateway = await start();
    const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ query: 'mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }' }),
    });
    const id = ((await response.json()) as any).data.submitTask.id;
    let connections = 0;
    const client = createWsClient({
      url: `ws://127.0.0.1:${port}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${KEY}` },
      retryAttempts: 50,
      retryWait: () => new Promise((resolve) => setTimeout(resolve, 50)),
      on: { connected: () => (connections += 1) },
    });
    track(() => client.dispose());
    const states: string[] = [];
    let completed = false;
    client.subscribe<any>(
      { query: WATCH, variables: { id } },
      {
        next: (result) => states.push(`${result.data.taskUpdated.status}:${result.data.taskUpdated.progress}`),
        error: (error) => states.push(`error:${String(error)}`),
        complete: () => {
          completed = true;
        },
      },
    );
    await eventually(() => expect(states).toHaveLength(1));
    clock.advance(1_500);
    await eventually(() => expect(states.at(-1)).toBe('PROCESSING:25'));
    await gateway.stop();
    clock.advance(500);
    gateway = await start();
    await eventually(() => expect(connections).toBe(2));
    // Resubscribed: the current state first.
    await eventually(() => expect(states.at(-1)).toBe('PROCESSING:50'));
    clock.advance(2_000);
    await eventually(() => expect(completed).toBe(true));
    expect(states.filter((state) => state.startsWith('COMPLETED'))).toEqual(['COMPLETED:100']);
    expect(states.some((state) => state.startsWith('error'))).toBe(false);
    await client.dispose();
    await gateway.stop();
  });
});
