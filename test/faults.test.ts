import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../src/emulator/emulator.ts';
import { eventually, settlesWithin } from './helpers/clock.ts';
import { type Answer, type ScriptedUpstream, startScriptedUpstream } from './helpers/scripted-upstream.ts';
import { type Stack, startEmulator, startStack } from './helpers/stack.ts';
import { connectWs, type Watch, watch } from './helpers/ws-client.ts';

let unhandled = 0;
const countUnhandled = () => {
  unhandled += 1;
};

beforeAll(() => {
  process.on('unhandledRejection', countUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', countUnhandled);
  expect(unhandled).toBe(0);
});

describe('queries against a faulty upstream', () => {
  let upstream: ScriptedUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await startScriptedUpstream();
    stack = await startStack({ upstreamUrl: upstream.url, env: { UPSTREAM_TIMEOUT_MS: '500' } });
  });
  afterAll(async () => {
    await stack.stop();
    await upstream.stop();
  });

  it.each<[string, Answer, string]>([
    ['500', { fault: 500 }, 'UPSTREAM_UNAVAILABLE'],
    ['502 with an HTML body', { fault: 'html502' }, 'UPSTREAM_UNAVAILABLE'],
    ['429 with Retry-After', { fault: 429, retryAfter: '5' }, 'RATE_LIMITED'],
    ['429 without Retry-After', { fault: 429 }, 'RATE_LIMITED'],
    ['429 with reset_at', { fault: 429, resetAt: Math.floor(Date.now() / 1000) + 60 }, 'RATE_LIMITED'],
    ['a connection reset', { fault: 'reset' }, 'UPSTREAM_UNAVAILABLE'],
    ['a server that never answers', { fault: 'hang' }, 'TIMEOUT'],
    ['truncated JSON', { fault: 'garbage' }, 'UPSTREAM_INVALID'],
    ['JSON of the wrong shape', { fault: 'wrong-shape' }, 'UPSTREAM_INVALID'],
  ])('gives a typed error for %s, never hanging on the upstream', async (_name, answer, code) => {
    upstream.script(answer);
    const abortedBefore = upstream.aborted();
    // UPSTREAM_TIMEOUT_MS is 500 ms, the default 10 s: the bound tells the two apart on any machine.
    // A key of its own per case: a 429 with Retry-After pauses its key's budget.
    const key = `sk-faults-${code}-${Date.now()}`;
    const { errors } = await settlesWithin(stack.gql(`{ task(id: "task-scripted") { __typename } }`, {}, key), 5_000);
    expect(errors?.[0]?.extensions?.code).toBe(code);
    // A request the upstream never answers is given up, not left open.
    if ('fault' in answer && answer.fault === 'hang') await eventually(() => expect(upstream.aborted()).toBe(abortedBefore + 1));
  });

  it('leaves no socket behind after the faults', async () => {
    upstream.script({ status: 'queued' });
    const { data } = await stack.gql(`{ task(id: "task-scripted") { __typename } }`, {}, 'sk-faults');
    expect(data.task.__typename).toBe('QueuedTask');
    await stack.stop();
    await upstream.stop();
    await eventually(() =>
      expect(process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap' || kind === 'TCPServerWrap')).toEqual([]),
    );
    // Restart for afterAll's stop.
    upstream = await startScriptedUpstream();
    stack = await startStack({ upstreamUrl: upstream.url });
  });
});

describe('a long run with 2% random faults', () => {
  let emulator: Emulator;
  let stack: Stack;
  const clients: Client[] = [];
  beforeAll(async () => {
    // Tasks process for an hour unless the test ends them: the run lasts a number of polls, not of seconds.
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    emulator = await startEmulator({ queuedMs: 100, processingMs: 3_600_000, faultRate: 0.02, hangMs: 1_000, random });
    stack = await startStack({
      upstreamUrl: emulator.url,
      env: { POLL_INTERVAL_MS: '15', POLL_MAX_INTERVAL_MS: '30', UPSTREAM_TIMEOUT_MS: '200' },
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await stack.stop();
    await emulator.stop();
  });

  it('ends every subscriber at the true final state, exactly once', async () => {
    const keys = ['sk-run-a', 'sk-run-b'];
    const ids: Array<[string, string]> = [];
    for (let i = 0; i < 30; i++) {
      const key = keys[i % 2]!;
      const prompt = i % 5 === 0 ? '[fail]' : 'ok';
      const { data } = await stack.gql(
        `mutation($p: String) { submitTask(input: { model: "gpt-image-2", prompt: $p }) { ... on BaseTask { id } } }`,
        { p: prompt },
        key,
      );
      ids.push([key, data.submitTask.id]);
    }
    const sockets = Object.fromEntries(keys.map((key) => [key, connectWs(stack.gatewayUrl, key)]));
    clients.push(...Object.values(sockets));
    const watchers: Array<[string, string, Watch]> = ids.flatMap(([key, id]) =>
      Array.from({ length: 4 }, () => [key, id, watch(sockets[key]!, id)] as [string, string, Watch]),
    );
    const polls = () => [...emulator.stats.gets.values()].reduce((sum, n) => sum + n, 0);
    await eventually(() => expect(polls()).toBeGreaterThan(2_000), 60_000);
    const truth = new Map(ids.map(([, id], i) => [id, i % 5 === 0 ? 'FAILED' : 'COMPLETED']));
    for (const [id, status] of truth) emulator.pin(id, status.toLowerCase(), 100);
    await eventually(() => expect(watchers.every(([, , w]) => w.completed)).toBe(true), 60_000);
    expect(emulator.stats.faults).toBeGreaterThan(10);
    for (const [, id, watcher] of watchers) {
      const status = truth.get(id)!;
      const states = watcher.states();
      expect(states.at(-1)).toMatch(new RegExp(`:${status}:`));
      expect(states.filter((state) => /COMPLETED|FAILED|CANCELLED/.test(state))).toHaveLength(1);
      expect(watcher.error).toBeUndefined();
    }
    await eventually(() => expect(stack.gateway.poller.stats().loops).toBe(0));
  }, 90_000);
});
