import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { eventually } from '../helpers/clock.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const SUBMIT = 'mutation { submitTask(input: { model: "m" }) { ... on BaseTask { id } } }';
const BY_STATUS = 'subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status } } }';
const BY_PROGRESS = 'subscription($id: ID!) { taskUpdated(id: $id) { ... on BaseTask { id progress } } }';

/** A raw graphql-transport-ws socket that records every text frame exactly as it arrived. */
async function rawSocket(gatewayUrl: string, key: string) {
  const socket = new WebSocket(`${gatewayUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  const frames: string[] = [];
  socket.on('message', (data) => frames.push(String(data)));
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${key}` } }));
  await eventually(() => expect(frames.some((frame) => frame.includes('connection_ack'))).toBe(true), 10_000);
  return {
    frames,
    subscribe(id: string, query: string, variables: Record<string, unknown>) {
      socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables } }));
    },
    /** The parsed messages of one subscription, in order. */
    messages(id: string) {
      return frames.map((frame) => JSON.parse(frame)).filter((message) => message.id === id);
    },
    close: () => socket.close(),
  };
}

describe('each change serialised once per operation and variables', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      emulator: { queuedMs: 150, processingMs: 400 },
      env: { POLL_INTERVAL_MS: '50', POLL_MAX_INTERVAL_MS: '50' },
    });
  });
  afterAll(() => stack.stop());

  it('gives every watcher on one socket the bytes of its own operation and variables', async () => {
    const first = (await stack.gql(SUBMIT, {}, 'sk-splice')).data.submitTask.id as string;
    const second = (await stack.gql(SUBMIT, {}, 'sk-splice')).data.submitTask.id as string;
    const socket = await rawSocket(stack.gatewayUrl, 'sk-splice');
    const plan: Array<[string, string, string]> = [];
    for (let i = 0; i < 20; i++) plan.push([`same-${i}`, BY_STATUS, first]);
    for (let i = 0; i < 5; i++) plan.push([`other-op-${i}`, BY_PROGRESS, first]);
    for (let i = 0; i < 5; i++) plan.push([`other-vars-${i}`, BY_STATUS, second]);
    for (const [id, query, task] of plan) socket.subscribe(id, query, { id: task });
    await eventually(
      () => expect(plan.every(([id]) => socket.messages(id).some((message) => message.type === 'complete'))).toBe(true),
      10_000,
    );
    socket.close();

    for (const [id, query, task] of plan) {
      const nexts = socket.messages(id).filter((message) => message.type === 'next');
      expect(nexts.length).toBeGreaterThan(0);
      for (const { payload } of nexts) {
        expect(payload.errors).toBeUndefined();
        expect(payload.data.taskUpdated.id).toBe(task);
        // Exactly the fields its own operation selected.
        const fields = Object.keys(payload.data.taskUpdated).sort();
        expect(fields).toEqual(query === BY_STATUS ? ['__typename', 'id', 'status'] : ['id', 'progress']);
      }
      expect(nexts.at(-1)!.payload.data.taskUpdated).toMatchObject(query === BY_STATUS ? { status: 'COMPLETED' } : { progress: 100 });
    }
    // Watchers of the same operation and variables got the same bytes, but for their own id.
    const payloadsOf = (id: string) =>
      socket.frames.filter((frame) => frame.startsWith(`{"id":"${id}","type":"next"`)).map((f) => f.slice(f.indexOf('"payload"')));
    for (let i = 1; i < 20; i++) expect(payloadsOf(`same-${i}`)).toEqual(payloadsOf('same-0'));
  });

  it('never gives one key the bytes of another key watching the same operation and variables', async () => {
    const task = (await stack.gql(SUBMIT, {}, 'sk-owner')).data.submitTask.id as string;
    const owner = await rawSocket(stack.gatewayUrl, 'sk-owner');
    const stranger = await rawSocket(stack.gatewayUrl, 'sk-stranger');
    for (let i = 0; i < 10; i++) {
      owner.subscribe(`w${i}`, BY_STATUS, { id: task });
      stranger.subscribe(`w${i}`, BY_STATUS, { id: task });
    }
    await eventually(
      () =>
        expect([owner, stranger].every((socket) => socket.frames.filter((frame) => frame.includes('"complete"')).length === 10)).toBe(true),
      10_000,
    );
    owner.close();
    stranger.close();
    for (let i = 0; i < 10; i++) {
      expect(owner.messages(`w${i}`).at(-2).payload.data.taskUpdated.status).toBe('COMPLETED');
      const seen = stranger.messages(`w${i}`);
      expect(seen.filter((message) => message.type === 'next')).toHaveLength(1);
      expect(seen[0].payload.errors[0].extensions.code).toBe('NOT_FOUND');
      expect(JSON.stringify(seen)).not.toContain('"status"');
    }
  });
});
