import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createManualClock, createManualScheduler, eventually } from '../helpers/clock.ts';
import { startIdentityProvider, type TestIdentityProvider } from '../helpers/identity-provider.ts';
import { firstOutcome, refusalOf } from '../helpers/jwt-transports.ts';
import { track } from '../helpers/leftovers.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "fox" }) { ... on BaseTask { id } } }`;
const WATCH = `subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status } } }`;
const LIFETIME_S = 120;
const TOLERANCE_S = 60;

/** Every event of one stream, and how it ended. */
interface Stream {
  events: any[];
  ended: boolean;
  closed?: { code: number; reason: string };
}

describe('token expiry on long-lived subscriptions (injected clock)', () => {
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  let idp: TestIdentityProvider;
  let stack: Stack;
  let taskId: string;

  beforeAll(async () => {
    idp = await startIdentityProvider({ now: clock.now });
    stack = await startStack({
      env: { ...idp.env, UPSTREAM_API_KEY: 'sk-server' },
      // Queued for a day: the subscription outlives its token.
      emulator: { now: clock.now, queuedMs: 86_400_000 },
      now: clock.now,
      scheduler,
      random: () => 0.5,
    });
    const submitted = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await idp.sign()}` },
      body: JSON.stringify({ query: SUBMIT }),
    });
    taskId = ((await submitted.json()) as any).data.submitTask.id;
  });
  afterAll(async () => {
    await stack?.stop();
    await idp?.stop();
  });

  function overWebSocket(token: string): Stream {
    const stream: Stream = { events: [], ended: false };
    const client = createClient({
      url: `${stack.gatewayUrl.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
      on: {
        closed: (event) => {
          stream.closed = event as { code: number; reason: string };
        },
      },
    });
    track(() => client.dispose());
    client.subscribe(
      { query: WATCH, variables: { id: taskId } },
      {
        next: (event) => stream.events.push(event),
        error: () => {
          stream.ended = true;
        },
        complete: () => {
          stream.ended = true;
        },
      },
    );
    return stream;
  }

  function overHttp(token: string, accept: string): Stream {
    const stream: Stream = { events: [], ended: false };
    const controller = new AbortController();
    track(() => controller.abort());
    void (async () => {
      const response = await fetch(`${stack.gatewayUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: WATCH, variables: { id: taskId } }),
        signal: controller.signal,
      });
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of response.body!) {
        text += decoder.decode(chunk, { stream: true });
        stream.events = events(text);
      }
      stream.ended = true;
    })().catch(() => undefined);
    return stream;
  }

  /** SSE `next` events or multipart payloads (heartbeats left out). */
  function events(text: string): any[] {
    if (text.includes('event: next')) return [...text.matchAll(/event: next\ndata: (.*)\n\n/g)].map((match) => JSON.parse(match[1]!));
    return text
      .split('--graphql')
      .map((part) => part.split('\r\n\r\n')[1]?.trim())
      .filter((body): body is string => !!body && body !== '{}' && body !== '--')
      .map((body) => JSON.parse(body))
      .map((part) => part.payload ?? { errors: part.errors });
  }

  it('closes the WebSocket with 4403 and ends SSE and multipart streams with UNAUTHENTICATED at exp plus the tolerance, not before', async () => {
    const issued = clock.now();
    const token = await idp.sign({ exp: Math.floor(issued / 1000) + LIFETIME_S });
    const streams = {
      websocket: overWebSocket(token),
      sse: overHttp(token, 'text/event-stream'),
      multipart: overHttp(token, 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json'),
    };
    const all = Object.values(streams);
    await eventually(() => expect(all.every((stream) => stream.events.length === 1)).toBe(true));
    for (const stream of all) expect(stream.events[0].data.taskUpdated).toMatchObject({ id: taskId, status: 'QUEUED' });
    expect(stack.gateway.poller.stats().subscribers).toBe(3);

    const expiresAt = (Math.floor(issued / 1000) + LIFETIME_S + TOLERANCE_S) * 1000;
    scheduler.advance(expiresAt - 1 - clock.now());
    await eventually(() => expect(stack.gateway.poller.stats().inflight).toBe(0));
    for (const stream of all) {
      expect(stream.ended).toBe(false);
      expect(stream.events.every((event) => !event.errors)).toBe(true);
    }
    expect(streams.websocket.closed).toBeUndefined();

    scheduler.advance(1);
    await eventually(() => expect(all.every((stream) => stream.ended)).toBe(true));
    expect(streams.websocket.closed).toEqual(expect.objectContaining({ code: 4403, reason: 'Token expired' }));
    for (const stream of [streams.sse, streams.multipart]) {
      expect(stream.events.at(-1).errors[0]).toMatchObject({ extensions: { code: 'UNAUTHENTICATED', reason: 'EXPIRED' } });
    }
    await eventually(() => expect(stack.gateway.poller.stats().subscribers).toBe(0));
  });

  it('refuses a reconnect with the same token, so a client is not closed in a loop', async () => {
    const token = await idp.sign({ exp: Math.floor(clock.now() / 1000) + LIFETIME_S });
    scheduler.advance((LIFETIME_S + TOLERANCE_S) * 1000);
    for (const transport of ['http', 'sse', 'multipart', 'websocket'] as const) {
      const outcome = await firstOutcome(stack.gatewayUrl, transport, WATCH, { id: taskId }, `Bearer ${token}`);
      expect(refusalOf(outcome)).toMatchObject({ reason: 'EXPIRED' });
    }
  });
});
