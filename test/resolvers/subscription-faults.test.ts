import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createManualClock, createManualScheduler, eventually } from '../helpers/clock.ts';
import { type ScriptedUpstream, startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { connectWs, watch } from '../helpers/ws-client.ts';

const ID = 'task-scripted';

describe('subscriptions through upstream faults', () => {
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  let upstream: ScriptedUpstream;
  let stack: Stack;
  let client: Client;

  beforeAll(async () => {
    upstream = await startScriptedUpstream(ID);
    stack = await startStack({
      upstreamUrl: upstream.url,
      env: { UPSTREAM_TIMEOUT_MS: '200' },
      now: clock.now,
      scheduler,
      random: () => 0.5,
    });
    client = connectWs(stack.gatewayUrl, 'sk-faults');
  });
  afterAll(async () => {
    await client.dispose();
    await stack.stop();
    await upstream.stop();
  });

  it('stay open through 500s, 429s, timeouts and garbage, and end at the true final state', async () => {
    upstream.script({ status: 'processing', progress: 10 });
    const watchers = Array.from({ length: 10 }, () => watch(client, ID));
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true));
    upstream.script(
      { fault: 500 },
      { fault: 429, retryAfter: '4' },
      { fault: 'hang' },
      { fault: 'garbage' },
      { fault: 'html502' },
      { status: 'processing', progress: 70 },
      { fault: 'reset' },
      { status: 'completed' },
    );
    for (let polls = 2; scheduler.pending().length > 0; polls++) {
      scheduler.runNext();
      await eventually(() => expect(upstream.gets()).toBe(polls));
      // Settled: nothing outstanding, or only the poll a 429 sent back to wait in its key's queue.
      await eventually(() => {
        const requests = stack.gateway.requestScheduler.stats();
        expect(stack.gateway.poller.stats().inflight === 0 || (requests.inFlight === 0 && requests.queued === 1)).toBe(true);
      });
    }
    await eventually(() => expect(watchers.every((w) => w.completed)).toBe(true));
    for (const watcher of watchers) {
      expect(watcher.states()).toEqual(['ProcessingTask:PROCESSING:10', 'ProcessingTask:PROCESSING:70', 'CompletedTask:COMPLETED:100']);
      expect(watcher.error).toBeUndefined();
    }
  });
});

describe('submitTask with waitSeconds when the upstream answers early', () => {
  let upstream: ScriptedUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await startScriptedUpstream(ID);
    stack = await startStack({ upstreamUrl: upstream.url, env: { POLL_INTERVAL_MS: '20', POLL_MAX_INTERVAL_MS: '50' } });
  });
  afterAll(async () => {
    await stack.stop();
    await upstream.stop();
  });

  it('waits the rest on the shared poller and answers the terminal state', async () => {
    // The stand-in ignores Prefer: wait and answers the submission at once, as queued.
    upstream.script({ status: 'queued' }, { status: 'processing', progress: 50 }, { status: 'completed' });
    const { data, errors } = await stack.gql(
      `mutation { submitTask(input: { model: "m", waitSeconds: 10 }) { __typename ... on BaseTask { status } } }`,
      {},
      'sk-wait',
    );
    expect(errors).toBeUndefined();
    expect(data.submitTask).toEqual({ __typename: 'CompletedTask', status: 'COMPLETED' });
    expect(upstream.requests[0]!.headers.prefer).toBe('wait=10');
  });
});
