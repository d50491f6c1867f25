import { ApolloClient, gql, HttpLink, InMemoryCache } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/lib/sha256.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

/** What an `<img src>` on any site can make a visitor's browser fetch: a GET with no header of the page's choosing. */
const HUNDRED_TASKS = `{ tasks(ids: [${Array.from({ length: 100 }, (_, i) => `"task-${i}"`).join(', ')}]) { __typename } }`;
const WATCH = 'subscription { taskUpdated(id: "task-1") { __typename } }';
const SUBMIT = 'mutation { submitTask(input: { model: "gpt-image-2" }) { __typename } }';

describe('GET operations from other sites (CSRF), with a default key', () => {
  let stack: Stack;
  const upstreamRequests = () => stack.emulator!.stats.requests;
  const get = (query: string, headers: Record<string, string> = {}) =>
    fetch(`${stack.gatewayUrl}/graphql?query=${encodeURIComponent(query)}`, { headers: { origin: 'https://evil.example', ...headers } });
  beforeAll(async () => {
    stack = await startStack({ env: { UPSTREAM_API_KEY: 'sk-default' } });
  });
  afterAll(() => stack.stop());

  it('refuses a simple GET of 100 tasks with 403 before a single upstream request', async () => {
    const before = upstreamRequests();
    const response = await get(HUNDRED_TASKS);
    expect(response.status).toBe(403);
    const body = (await response.json()) as any;
    expect(body.errors[0].message).toMatch(/CSRF header/);
    expect(body).not.toHaveProperty('data');
    expect(upstreamRequests()).toBe(before);
  });

  it('refuses a simple GET subscription asked as text/event-stream (what EventSource sends), watching nothing', async () => {
    const response = await get(WATCH, { accept: 'text/event-stream' });
    expect(response.status).toBe(403);
    expect(await response.text()).toMatch(/CSRF header/);
    expect(stack.gateway.poller.stats().subscribers).toBe(0);
    expect(stack.gateway.poller.stats().loops).toBe(0);
  });

  it.each([
    ['apollo-require-preflight', { 'apollo-require-preflight': 'true' }],
    ['x-apollo-operation-name', { 'x-apollo-operation-name': 'Anything' }],
    ['x-graphql-yoga-csrf', { 'x-graphql-yoga-csrf': '1' }],
    ['a content type that is not a simple one (Apollo Client sends application/json)', { 'content-type': 'application/json' }],
    ['its own key in Authorization', { authorization: 'Bearer sk-own' }],
  ])('runs a GET that carries %s (a browser sends it cross-site only after a preflight)', async (_, headers) => {
    const response = await get('{ task(id: "task-nope") { __typename } }', headers);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ data: { task: null } });
  });

  it('still refuses a GET with a simple content type and nothing else', async () => {
    expect((await get('{ __typename }', { 'content-type': 'text/plain' })).status).toBe(403);
  });

  it('never runs a mutation over GET, whatever the headers', async () => {
    const before = stack.emulator!.stats.submits;
    const response = await get(SUBMIT, { 'apollo-require-preflight': 'true' });
    expect(response.status).toBe(405);
    expect(stack.emulator!.stats.submits).toBe(before);
  });

  it('keeps APQ GETs from Apollo Client working with no header added by hand', async () => {
    const TASK = 'query Task($id: ID!) { task(id: $id) { __typename } }';
    const methods: string[] = [];
    const link = new PersistedQueryLink({ sha256: (query: string) => sha256(query), useGETForHashedQueries: true }).concat(
      new HttpLink({
        uri: `${stack.gatewayUrl}/graphql`,
        fetch: (input, init) => {
          methods.push(init?.method ?? 'GET');
          return fetch(input, init);
        },
      }),
    );
    const client = new ApolloClient({ link, cache: new InMemoryCache() });
    expect((await client.query<any>({ query: gql(TASK), variables: { id: 'task-nope' } })).data).toEqual({ task: null });
    const again = new ApolloClient({ link, cache: new InMemoryCache() });
    expect((await again.query<any>({ query: gql(TASK), variables: { id: 'task-nope' } })).data).toEqual({ task: null });
    // The hash (unknown), the text by POST, then the hash alone by GET: answered, not refused.
    expect(methods).toEqual(['GET', 'POST', 'GET']);
  });
});
