import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApolloClient, gql, HttpLink, InMemoryCache } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { createClient as createWsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadTrustedDocuments } from '../../src/graphql/persisted-operations.ts';
import { sha256 } from '../../src/lib/sha256.ts';
import { createManualClock, eventually } from '../helpers/clock.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const KEY = 'sk-http-clients';
const WATCH = `subscription Watch($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status progress } } }`;
const WATCH_MANY = `subscription WatchMany($ids: [ID!]!) {
  tasksUpdated(ids: $ids) { __typename ... on BaseTask { id status progress } ... on TaskNotFoundError { id } }
}`;
const TASK = `query Task($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status } } }`;
const possibleTypes = {
  Task: ['QueuedTask', 'ProcessingTask', 'CompletedTask', 'FailedTask', 'CancelledTask', 'UnknownTask'],
  TaskUpdate: [
    'QueuedTask',
    'ProcessingTask',
    'CompletedTask',
    'FailedTask',
    'CancelledTask',
    'UnknownTask',
    'TaskNotFoundError',
    'TaskWatchError',
  ],
  BaseTask: ['QueuedTask', 'ProcessingTask', 'CompletedTask', 'FailedTask', 'CancelledTask', 'UnknownTask'],
};

describe("subscriptions over HTTP multipart (Apollo's protocol) and automatic persisted queries", () => {
  const clock = createManualClock();
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      emulator: { now: clock.now, queuedMs: 1_000, processingMs: 2_000 },
      now: clock.now,
      env: { POLL_INTERVAL_MS: '20', POLL_MAX_INTERVAL_MS: '40' },
      multipartHeartbeatMs: 50,
    });
  });
  afterAll(() => stack.stop());

  const submit = async () =>
    (await stack.gql(`mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }`, {}, KEY)).data.submitTask
      .id as string;
  const apollo = (link: ConstructorParameters<typeof ApolloClient>[0]['link']) =>
    new ApolloClient({ link, cache: new InMemoryCache({ possibleTypes }) });
  const httpLink = () => new HttpLink({ uri: `${stack.gatewayUrl}/graphql`, headers: { authorization: `Bearer ${KEY}` } });

  it("works with Apollo Client's plain HttpLink: taskUpdated and tasksUpdated over multipart, no WebSocket", async () => {
    const id = await submit();
    const client = apollo(httpLink());
    const one: string[] = [];
    const many: string[] = [];
    const completed = { one: false, many: false };
    client.subscribe<any>({ query: gql(WATCH), variables: { id } }).subscribe({
      next: ({ data }) => one.push(`${data.taskUpdated.status}:${data.taskUpdated.progress}`),
      complete: () => {
        completed.one = true;
      },
    });
    client.subscribe<any>({ query: gql(WATCH_MANY), variables: { ids: [id, 'task-missing'] } }).subscribe({
      next: ({ data }) => many.push(`${data.tasksUpdated.__typename}:${data.tasksUpdated.id}:${data.tasksUpdated.status ?? ''}`),
      complete: () => {
        completed.many = true;
      },
    });
    await eventually(() => expect([one.length, many.length]).toEqual([1, 2]));
    expect(one).toEqual(['QUEUED:0']);
    clock.advance(2_000);
    await eventually(() => expect(one.at(-1)).toBe('PROCESSING:50'));
    clock.advance(2_000);
    await eventually(() => expect(completed).toEqual({ one: true, many: true }));
    expect(one).toEqual(['QUEUED:0', 'PROCESSING:50', 'COMPLETED:100']);
    expect(many.filter((event) => event.startsWith('TaskNotFoundError'))).toEqual(['TaskNotFoundError:task-missing:']);
    expect(many.filter((event) => event.endsWith('COMPLETED'))).toEqual([`CompletedTask:${id}:COMPLETED`]);
    client.stop();
  });

  it('frames each event as {"payload": ...}, sends {} heartbeats while idle, and stops the loop when the client leaves', async () => {
    const id = await submit();
    const controller = new AbortController();
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json',
        authorization: `Bearer ${KEY}`,
      },
      body: JSON.stringify({ query: WATCH, variables: { id } }),
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('multipart/mixed;boundary="graphql";subscriptionSpec="1.0"');
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('\r\n\r\n{}\r\n--graphql')) text += decoder.decode((await reader.read()).value, { stream: true });
    expect(text.startsWith('\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n')).toBe(true);
    expect(text).toContain(`{"payload":{"data":{"taskUpdated":{"__typename":"QueuedTask","id":"${id}","status":"QUEUED","progress":0}}}}`);
    expect(stack.gateway.poller.stats().subscribers).toBe(1);
    controller.abort();
    await eventually(() => expect(stack.gateway.poller.stats().subscribers).toBe(0));
  });

  it('answers a query or an early error as plain JSON even when multipart is accepted, and refuses nothing it used to (no 406)', async () => {
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json',
        authorization: `Bearer ${KEY}`,
      },
      body: JSON.stringify({ query: WATCH_MANY, variables: { ids: ['../bad'] } }),
    });
    expect(response.status).not.toBe(406);
    const body = (await response.json()) as any;
    expect(body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
  });

  it("works with Apollo Client's persisted-queries link: the hash first, the text once when unknown, then GET with the hash alone", async () => {
    const id = await submit();
    const sent: Array<{ method: string; hasQuery: boolean }> = [];
    const recordingFetch: typeof fetch = async (input, init) => {
      const url = new URL(String(input));
      const body = typeof init?.body === 'string' ? JSON.parse(init.body) : null;
      sent.push({ method: init?.method ?? 'GET', hasQuery: Boolean(body?.query ?? url.searchParams.get('query')) });
      return fetch(input, init);
    };
    const link = () =>
      new PersistedQueryLink({ sha256: (query: string) => sha256(query), useGETForHashedQueries: true }).concat(
        new HttpLink({ uri: `${stack.gatewayUrl}/graphql`, headers: { authorization: `Bearer ${KEY}` }, fetch: recordingFetch }),
      );
    const first = await apollo(link()).query<any>({ query: gql(TASK), variables: { id } });
    expect(first.data.task).toEqual({ __typename: 'QueuedTask', id, status: 'QUEUED' });
    // Unknown hash, answered PersistedQueryNotFound; then the text with its hash, by POST.
    expect(sent).toEqual([
      { method: 'GET', hasQuery: false },
      { method: 'POST', hasQuery: true },
    ]);
    sent.length = 0;
    const second = await apollo(link()).query<any>({ query: gql(TASK), variables: { id } });
    expect(second.data.task.id).toBe(id);
    expect(sent).toEqual([{ method: 'GET', hasQuery: false }]);
  });

  it('answers PersistedQueryNotFound for an unknown hash and PersistedQueryMismatch for a wrong one', async () => {
    const get = async (extensions: object, query?: string) => {
      const url = new URL(`${stack.gatewayUrl}/graphql`);
      url.searchParams.set('extensions', JSON.stringify(extensions));
      if (query) url.searchParams.set('query', query);
      return (await (await fetch(url, { headers: { accept: 'application/json', 'apollo-require-preflight': 'true' } })).json()) as any;
    };
    const unknown = await get({ persistedQuery: { version: 1, sha256Hash: sha256('query { nothing }') } });
    expect(unknown.errors[0]).toMatchObject({ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } });
    const mismatch = await get({ persistedQuery: { version: 1, sha256Hash: sha256('query { other }') } }, '{ __typename }');
    expect(mismatch.errors[0].extensions.code).toBe('PERSISTED_QUERY_MISMATCH');
  });

  it('keeps a bounded number of persisted queries, forgetting the least recently used', async () => {
    const register = async (query: string) => {
      const response = await fetch(`${stack.gatewayUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, extensions: { persistedQuery: { version: 1, sha256Hash: sha256(query) } } }),
      });
      return (await response.json()) as any;
    };
    const byHash = async (query: string) => {
      const url = new URL(`${stack.gatewayUrl}/graphql`);
      url.searchParams.set('extensions', JSON.stringify({ persistedQuery: { version: 1, sha256Hash: sha256(query) } }));
      return (await (await fetch(url, { headers: { 'apollo-require-preflight': 'true' } })).json()) as any;
    };
    const queries = Array.from({ length: 1_100 }, (_, i) => `query Overflow${i} { __typename }`);
    for (const query of queries) expect((await register(query)).data).toEqual({ __typename: 'Query' });
    expect((await byHash(queries[0]!)).errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect((await byHash(queries.at(-1)!)).data).toEqual({ __typename: 'Query' });
  });
});

describe('trusted documents (TRUSTED_DOCUMENTS)', () => {
  const allowed = `query Allowed { __typename }`;
  const allowedSubscription = `subscription Allowed($id: ID!) { taskUpdated(id: $id) { __typename } }`;
  let stack: Stack;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trusted-'));
    const path = join(dir, 'persisted-documents.json');
    writeFileSync(path, JSON.stringify({ [sha256(allowed)]: allowed, [sha256(allowedSubscription)]: allowedSubscription }));
    stack = await startStack({ emulator: { queuedMs: 60_000 }, trustedDocuments: loadTrustedDocuments(path) });
  });
  afterAll(() => stack.stop());

  const post = async (body: object) =>
    (await (
      await fetch(`${stack.gatewayUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: JSON.stringify(body),
      })
    ).json()) as any;

  it('runs a listed operation by its hash, and refuses operation text and unknown hashes over HTTP', async () => {
    expect(await post({ extensions: { persistedQuery: { version: 1, sha256Hash: sha256(allowed) } } })).toEqual({
      data: { __typename: 'Query' },
    });
    expect((await post({ query: allowed })).errors[0].extensions.code).toBe('PERSISTED_QUERY_ONLY');
    expect((await post({ query: '{ __schema { types { name } } }' })).errors[0].extensions.code).toBe('PERSISTED_QUERY_ONLY');
    const unknown = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: sha256('{ __typename }') } } });
    expect(unknown.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
  });

  it('runs only listed operations over WebSocket', async () => {
    const client = createWsClient({
      url: `${stack.gatewayUrl.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${KEY}` },
      retryAttempts: 0,
    });
    try {
      const run = (query: string, variables = {}) =>
        new Promise<any>((resolve) => {
          client.subscribe({ query, variables }, { next: resolve, error: resolve, complete: () => undefined });
        });
      const id = 'task-not-there';
      // Listed: it runs (and reports the missing task as any subscription would).
      const listed = await run(allowedSubscription, { id });
      expect(JSON.stringify(listed)).toContain('NOT_FOUND');
      const unlisted = await run('subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id } } }', { id });
      expect(JSON.stringify(unlisted)).toContain('PERSISTED_QUERY_ONLY');
    } finally {
      await client.dispose();
    }
  });

  it('refuses a file whose hashes are not those of their operations', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trusted-'));
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify({ [sha256('{ a }')]: '{ b }' }));
    expect(() => loadTrustedDocuments(path)).toThrow(/not the sha-256 of its operation/);
  });
});
