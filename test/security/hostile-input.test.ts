import fc from 'fast-check';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredential } from '../../src/upstream/credential.ts';
import { createTasksClient } from '../../src/upstream/tasks-client.ts';
import { track } from '../helpers/leftovers.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { json, type StandIn, startStandIn } from '../helpers/stand-in.ts';
import { openSocket } from '../helpers/ws-client.ts';

const allowedPath = /^\/v1\/tasks\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}(\/cancel)?$/;

/** Strings that look like what attackers send as ids. */
const hostileId = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.stringMatching(/^[A-Za-z0-9._:%/?#\\-]{0,40}$/),
  fc.constantFrom(
    '..',
    '.',
    '../admin',
    'a/../../b',
    '%2e%2e%2f',
    'a?b=c',
    'a#b',
    'a\r\nX-Evil: 1',
    '\u0000',
    'ｔａｓｋ',
    'task\u202e',
    'x'.repeat(129),
    'x'.repeat(100_000),
  ),
  fc.tuple(fc.constantFrom('task-', ''), fc.string({ maxLength: 20 })).map(([prefix, rest]) => prefix + rest),
);

describe('hostile input', () => {
  let upstream: StandIn;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await startStandIn((request, response) => {
      if (request.url.endsWith('/cancel')) return json(response, 400, { error: { code: 'task_not_cancellable' } });
      json(response, 404, { error: { code: 'task_not_found' } });
    });
    stack = await startStack({ upstreamUrl: upstream.url });
  });
  afterAll(async () => {
    await stack.stop();
    await upstream.stop();
  });

  it('never sends an upstream request outside /v1/tasks/<id> and /v1/tasks/<id>/cancel, whatever the id', async () => {
    await fc.assert(
      fc.asyncProperty(hostileId, fc.constantFrom('task', 'tasks', 'cancel'), async (id, surface) => {
        const before = upstream.requests.length;
        const query =
          surface === 'task'
            ? 'query($id: ID!) { task(id: $id) { __typename } }'
            : surface === 'tasks'
              ? 'query($id: ID!) { tasks(ids: [$id, "task-ok"]) { __typename } }'
              : 'mutation($id: ID!) { cancelTask(id: $id) { __typename } }';
        const { errors } = await stack.gql(query, { id }, 'sk-hostile');
        for (const request of upstream.requests.slice(before)) {
          expect(request.url).toMatch(allowedPath);
          expect(decodeURIComponent(request.url.split('/')[3]!)).toBe(request.url.split('/')[3]);
        }
        const valid = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id);
        if (!valid) {
          expect(errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
          expect(upstream.requests.length).toBe(before);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the client itself to those paths, for any id', async () => {
    const client = createTasksClient({ baseUrl: upstream.url });
    track(() => client.close());
    const key = createCredential('sk-hostile');
    await fc.assert(
      fc.asyncProperty(hostileId, async (id) => {
        const before = upstream.requests.length;
        await client.getTask(id, key).catch(() => undefined);
        await client.cancelTask(id, key).catch(() => undefined);
        for (const request of upstream.requests.slice(before)) expect(request.url).toMatch(allowedPath);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses operations that would fan out into hundreds of upstream calls', async () => {
    const before = upstream.requests.length;
    const aliases = Array.from({ length: 31 }, (_, i) => `t${i}: task(id: "task-${i}") { __typename }`).join(' ');
    const manyAliases = await stack.gql(`{ ${aliases} }`, {}, 'sk-a');
    expect(manyAliases.errors?.[0]?.message).toContain('at most 30');
    // Two lists of 100 distinct ids each: 200 reads, over the allowance of 100 per operation.
    const ids = (offset: number) => Array.from({ length: 100 }, (_, i) => `task-${offset + i}`);
    const budget = await stack.gql(
      `query($a: [ID!]!, $b: [ID!]!) { a: tasks(ids: $a) { __typename } b: tasks(ids: $b) { __typename } }`,
      { a: ids(0), b: ids(100) },
      'sk-a',
    );
    expect(JSON.stringify(budget.errors)).toContain('more than 100 upstream requests');
    // The same ids twice cost one read each: within the allowance.
    const repeated = await stack.gql(
      `query($a: [ID!]!) { a: tasks(ids: $a) { __typename } b: tasks(ids: $a) { __typename } }`,
      { a: ids(0) },
      'sk-a',
    );
    expect(JSON.stringify(repeated.errors ?? [])).not.toContain('upstream requests');
    const deep = await stack.gql(`{ task(id: "task-1") { ... on CompletedTask { result { images { urls } } } } }`, {}, 'sk-a');
    expect(deep.errors).toBeUndefined();
    const nested = `query { __schema { types { fields { type ${'{ ofType '.repeat(12)}{ name }${' }'.repeat(12)} } } } }`;
    // What GraphiQL and codegen send to learn the schema stays allowed.
    const introspection = await stack.gql(
      getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, inputValueDeprecation: true }),
      {},
      'sk-a',
    );
    expect(introspection.errors).toBeUndefined();
    const tooDeep = await stack.gql(nested, {}, 'sk-a');
    expect(tooDeep.errors?.[0]?.message).toMatch(/levels deep; at most 15/);
    // Refused operations cost nothing upstream; each budgeted one spent at most 100.
    expect(upstream.requests.length - before).toBeLessThanOrEqual(201);
  });

  it('answers 413 to an oversized body and 411 to one without a length', async () => {
    const big = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ __typename }`, padding: 'x'.repeat(300 * 1024) }),
    });
    expect(big.status).toBe(413);
    expect((await big.json()).errors[0].message).toContain('exceeds');
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve) => {
      const chunked = request(
        `${stack.gatewayUrl}/graphql`,
        { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } },
        (response) => {
          response.resume();
          resolve(response.statusCode!);
        },
      );
      chunked.end('{"query":"{ __typename }"}');
    });
    expect(status).toBe(411);
  });

  it('closes only the socket that sends a malformed WebSocket message', async () => {
    const url = `${stack.gatewayUrl.replace('http', 'ws')}/graphql`;
    const open = async () => {
      const socket = openSocket(url, 'graphql-transport-ws');
      await new Promise((resolve) => socket.once('open', resolve));
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer sk-ws' } }));
      await new Promise((resolve) => socket.once('message', resolve));
      return socket;
    };
    const bad = await open();
    const good = await open();
    const closed = new Promise<number>((resolve) => bad.once('close', (code) => resolve(code)));
    bad.send('{"type":"subscribe","id":');
    expect(await closed).toBe(4400);
    good.send(JSON.stringify({ type: 'subscribe', id: '1', payload: { query: '{ __typename }' } }));
    const answer = await new Promise<string>((resolve) => good.once('message', (data) => resolve(data.toString())));
    expect(JSON.parse(answer)).toMatchObject({ id: '1', type: 'next', payload: { data: { __typename: 'Query' } } });
    good.close();
  });

  it('closes a socket that never sends connection_init', async () => {
    const socket = openSocket(`${stack.gatewayUrl.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    const code = await new Promise<number>((resolve) => socket.once('close', (closeCode) => resolve(closeCode)));
    expect(code).toBe(4408);
  });
});
