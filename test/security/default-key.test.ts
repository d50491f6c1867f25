import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Stack, startStack } from '../helpers/stack.ts';

/** Opens a graphql-ws socket with `payload` as connectionParams: 'ack', or the close code. */
async function connect(stack: Stack, payload: unknown): Promise<{ outcome: string | number; socket: WebSocket }> {
  const socket = new WebSocket(`${stack.gatewayUrl.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
  await once(socket, 'open');
  socket.send(JSON.stringify({ type: 'connection_init', payload }));
  const outcome = await new Promise<string | number>((resolve) => {
    socket.once('message', (data) => resolve(JSON.parse(data.toString()).type === 'connection_ack' ? 'ack' : 'other'));
    socket.once('close', (code) => resolve(code));
  });
  return { outcome, socket };
}

/** Runs `query` on an acknowledged socket and resolves with its first result. */
async function run(socket: WebSocket, query: string, variables = {}): Promise<any> {
  socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables } }));
  for (;;) {
    const [data] = await once(socket, 'message');
    const message = JSON.parse(data.toString());
    if (message.id === '1') return message.payload;
  }
}

describe('the default key (UPSTREAM_API_KEY)', () => {
  let stack: Stack;
  let ownTask: string;
  const sockets: WebSocket[] = [];
  beforeAll(async () => {
    stack = await startStack({ env: { UPSTREAM_API_KEY: 'sk-default' } });
    const submitted = await stack.gql('mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }', {}, 'sk-own');
    ownTask = submitted.data.submitTask.id;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.terminate();
    await stack.stop();
  });

  const post = async (headers: Record<string, string>) => {
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ query: '{ task(id: "task-none") { __typename } }' }),
    });
    return (await response.json()) as any;
  };

  it('serves an HTTP request that carries no credential at all', async () => {
    expect(await post({})).toEqual({ data: { task: null } });
  });

  it.each([' ', '', 'Bearer', 'Basic c2stZGVmYXVsdA==', 'Bearer two words'])(
    'refuses an HTTP request whose Authorization is present but malformed (%j) with UNAUTHENTICATED',
    async (authorization) => {
      const { errors } = await post({ authorization });
      expect(errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    },
  );

  it('acknowledges a WebSocket that carries no credential at all', async () => {
    const { outcome, socket } = await connect(stack, {});
    sockets.push(socket);
    expect(outcome).toBe('ack');
  });

  it.each([
    ['an object', { authorization: { token: 'sk-x' } }],
    ['an empty string', { authorization: '' }],
    ['a number', { authorization: 42 }],
    ['null', { authorization: null }],
    ['not a bearer key', { Authorization: 'sk-x' }],
    ['two spellings', { authorization: 'Bearer sk-a', Authorization: 'Bearer sk-b' }],
    ['a name with a space', { 'authorization ': 'Bearer two words' }],
    ['in headers, malformed', { headers: { Authorization: 'Bearer junk with space' } }],
    ['a token instead', { token: 'sk-x' }],
    ['an authToken instead', { authToken: 'Bearer sk-x' }],
  ])('closes a WebSocket whose connectionParams.authorization is %s with 4403', async (_, payload) => {
    const { outcome, socket } = await connect(stack, payload);
    sockets.push(socket);
    expect(outcome).toBe(4403);
  });

  it('reads connectionParams.headers.authorization as the caller’s own key, not the default', async () => {
    const { outcome, socket } = await connect(stack, { headers: { authorization: 'Bearer sk-own' } });
    sockets.push(socket);
    expect(outcome).toBe('ack');
    const result = await run(socket, 'query($id: ID!) { task(id: $id) { ... on BaseTask { id } } }', { id: ownTask });
    expect(result.data.task).toEqual({ id: ownTask });
  });

  it('reads connectionParams.Authorization (any case) as the caller’s own key, not the default', async () => {
    const { outcome, socket } = await connect(stack, { Authorization: 'Bearer sk-own' });
    sockets.push(socket);
    expect(outcome).toBe('ack');
    // The emulator shows a task only to the key that submitted it: the default key would read null.
    const result = await run(socket, 'query($id: ID!) { task(id: $id) { ... on BaseTask { id } } }', { id: ownTask });
    expect(result.data.task).toEqual({ id: ownTask });
  });
});
