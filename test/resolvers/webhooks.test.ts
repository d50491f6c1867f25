import type { Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createManualClock, createManualScheduler, eventually } from '../helpers/clock.ts';
import { freePort, type Stack, startStack } from '../helpers/stack.ts';
import { json, type StandIn, startStandIn } from '../helpers/stand-in.ts';
import { connectWs, watch } from '../helpers/ws-client.ts';

const KEY = 'sk-webhooks';
const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }`;

describe('webhooks', () => {
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  let stack: Stack;
  const callbackUrls: string[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    const port = await freePort();
    stack = await startStack({
      emulator: { now: clock.now, queuedMs: 1_000, processingMs: 5_000, sweepIntervalMs: 20 },
      env: { PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` },
      now: clock.now,
      scheduler,
      random: () => 0.5,
    });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.dispose()));
    callbackUrls.length = 0;
  });
  afterAll(() => stack.stop());

  async function submit(): Promise<string> {
    const { data } = await stack.gql(SUBMIT, {}, KEY);
    return data.submitTask.id;
  }

  it('sends a callback_url with an unguessable token and no key in it', async () => {
    const standIn = await startStandIn((request, response) => {
      callbackUrls.push(JSON.parse(request.body).callback_url);
      json(response, 200, { task_id: 'task-x', status: 'queued', model: 'm', created_at: 1_720_000_000 });
    });
    const port = await freePort();
    const other = await startStack({ upstreamUrl: standIn.url, env: { PORT: String(port), PUBLIC_URL: 'https://gw.example.com/' } });
    await other.gql(SUBMIT, {}, KEY);
    await other.gql(SUBMIT, {}, KEY);
    await other.stop();
    await standIn.stop();
    expect(callbackUrls).toHaveLength(2);
    for (const url of callbackUrls) {
      expect(url).toMatch(/^https:\/\/gw\.example\.com\/webhooks\/tasks\/[\w-]{32}$/);
      expect(url).not.toContain(KEY);
    }
    expect(callbackUrls[0]).not.toBe(callbackUrls[1]);
  });

  it('delivers the terminal state to subscribers at once, long before the next poll', async () => {
    const id = await submit();
    const client = connectWs(stack.gatewayUrl, KEY);
    clients.push(client);
    const watchers = Array.from({ length: 20 }, () => watch(client, id));
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true));
    const pollTimer = scheduler.pending();
    expect(pollTimer).toEqual([2_000]);
    // The task ends upstream; the poll timer does not fire. Only the callback can tell the gateway.
    clock.advance(6_000);
    await eventually(() => expect(watchers.every((w) => w.completed)).toBe(true));
    for (const watcher of watchers) expect(watcher.states()).toEqual(['QueuedTask:QUEUED:0', 'CompletedTask:COMPLETED:100']);
    expect(stack.emulator!.stats.callbacks).toBeGreaterThanOrEqual(1);
  });

  it('answers 404 to an unknown token and 405 to a GET', async () => {
    const unknown = await fetch(`${stack.gatewayUrl}/webhooks/tasks/${'x'.repeat(32)}`, { method: 'POST', body: '{}' });
    expect(unknown.status).toBe(404);
    const get = await fetch(`${stack.gatewayUrl}/webhooks/tasks/${'x'.repeat(32)}`);
    expect(get.status).toBe(405);
  });
});

describe('webhook callbacks as untrusted hints', () => {
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  let upstream: StandIn;
  let stack: Stack;
  let status = 'queued';
  let callbackUrl = '';
  let gets = 0;
  const clients: Client[] = [];

  beforeAll(async () => {
    upstream = await startStandIn((request, response) => {
      if (request.method === 'POST') callbackUrl = JSON.parse(request.body).callback_url;
      else gets += 1;
      json(response, 200, {
        task_id: 'task-hint',
        status,
        model: 'm',
        created_at: 1_720_000_000,
        ...(status === 'completed' ? { completed_at: 1_720_000_100, cost: 3, result: {} } : {}),
      });
    });
    const port = await freePort();
    stack = await startStack({
      upstreamUrl: upstream.url,
      env: { PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` },
      now: clock.now,
      scheduler,
      random: () => 0.5,
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await stack.stop();
    await upstream.stop();
  });

  it('re-reads the task instead of believing a forged body, and takes duplicates harmlessly', async () => {
    await stack.gql(SUBMIT, {}, KEY);
    expect(callbackUrl).toMatch(/\/webhooks\/tasks\//);
    const client = connectWs(stack.gatewayUrl, KEY);
    clients.push(client);
    const watcher = watch(client, 'task-hint');
    await eventually(() => expect(watcher.results).toHaveLength(1));
    const before = gets;
    const forged = await fetch(callbackUrl, { method: 'POST', body: JSON.stringify({ task_id: 'task-hint', status: 'completed' }) });
    expect(forged.status).toBe(202);
    await eventually(() => expect(gets).toBe(before + 1));
    await eventually(() => expect(stack.gateway.poller.stats().inflight).toBe(0));
    expect(watcher.states()).toEqual(['QueuedTask:QUEUED:0']);

    status = 'completed';
    const answers = await Promise.all([1, 2, 3].map(() => fetch(callbackUrl, { method: 'POST', body: 'not even json' })));
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
    await eventually(() => expect(watcher.completed).toBe(true));
    expect(watcher.states()).toEqual(['QueuedTask:QUEUED:0', 'CompletedTask:COMPLETED:100']);
    // Later callbacks for a finished task cost nothing and change nothing.
    const getsBefore = gets;
    const seen = watcher.results.length;
    const after = await fetch(callbackUrl, { method: 'POST', body: '{}' });
    expect(after.status).toBe(202);
    // The gateway acts on a callback in the turn that sends its 202: a re-read it began would be in flight now, or counted.
    expect(stack.gateway.poller.stats()).toMatchObject({ inflight: 0, loops: 0, subscribers: 0 });
    expect(gets).toBe(getsBefore);
    expect(watcher.results).toHaveLength(seen);
  });
});
