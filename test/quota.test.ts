import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmulator, type Emulator } from '../src/emulator/emulator.ts';
import { createManualClock, createManualScheduler, eventually } from './helpers/clock.ts';
import { createTasks } from './helpers/emulator-tasks.ts';
import { type Stack, startStack } from './helpers/stack.ts';
import { connectWs, type Watch, watch } from './helpers/ws-client.ts';

/** The value of one sample in the gateway's Prometheus text, 0 when absent. */
async function metric(stack: Stack, sample: string): Promise<number> {
  const text = await (await fetch(`${stack.gatewayUrl}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

describe('one key under its upstream quota (40 watched tasks, 10 requests/s, injected clock)', () => {
  const KEY = 'sk-quota-small';
  const TASKS = 40;
  const CAP = 10;
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  let emulator: Emulator;
  let stack: Stack;
  let client: Client;
  let ids: string[];
  let watchers: Watch[];

  beforeAll(async () => {
    emulator = createEmulator({ now: clock.now, queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 });
    const upstreamUrl = await emulator.start();
    ids = await createTasks(emulator, KEY, TASKS);
    emulator.setRateLimit({ cap: CAP, windowMs: 1_000 });
    emulator.resetStats();
    stack = await startStack({ upstreamUrl, now: clock.now, scheduler, random: () => 0.5 });
    client = connectWs(stack.gatewayUrl, KEY);
  });
  afterAll(async () => {
    await client.dispose();
    await stack.stop();
    await emulator.stop();
  });

  const tick = () => new Promise((resolve) => setImmediate(resolve));
  /** Moves the clock by `ms` in 10 ms steps, letting every upstream request sent on the way be answered first. */
  async function drive(ms: number, each?: () => void) {
    for (let left = ms; left > 0; left -= 10) {
      scheduler.advance(10);
      await tick();
      await eventually(() => expect(stack.gateway.requestScheduler.stats().inFlight).toBe(0));
      await tick();
      each?.();
    }
  }

  it('gives every watcher its first state, keeps 429s under 5 %, and reads every task at least every 1.5 N/R s', async () => {
    watchers = ids.map((id) => watch(client, id));
    let firstStates = 0;
    for (; firstStates < 30_000 && !watchers.every((w) => w.results.length > 0); firstStates += 100) await drive(100);
    expect(watchers.every((w) => w.results.length === 1 && !w.results[0]!.errors)).toBe(true);
    // The floor is N/R = 4 s (the first requests go before the quota is known).
    expect(firstStates).toBeLessThanOrEqual((1.5 * TASKS * 1_000) / CAP);

    // Steady state for 30 s: note, each second, when each task was last read.
    const lastRead = new Map(ids.map((id) => [id, clock.now()]));
    const reads = new Map(ids.map((id) => [id, emulator.stats.gets.get(id) ?? 0]));
    let longestGapMs = 0;
    let elapsed = 0;
    await drive(30_000, () => {
      elapsed += 10;
      if (elapsed % 1_000 !== 0) return;
      for (const id of ids) {
        const count = emulator.stats.gets.get(id) ?? 0;
        if (count > reads.get(id)!) {
          reads.set(id, count);
          lastRead.set(id, clock.now());
        }
        longestGapMs = Math.max(longestGapMs, clock.now() - lastRead.get(id)!);
      }
    });
    const refused = emulator.stats.rateLimited.get(KEY) ?? 0;
    expect(refused / emulator.stats.requests).toBeLessThanOrEqual(0.05);
    // At 95 % of the quota, N/R is 4.2 s; each task was read at least every 1.5 N/R (sampled each second).
    expect(longestGapMs).toBeLessThanOrEqual(Math.ceil((1.5 * TASKS * 1_000) / (0.95 * CAP) / 1_000) * 1_000);
    // And the quota was used: at least 90 % of it over the 30 s.
    const useful = [...reads.values()].reduce((sum, n) => sum + n, 0);
    expect(useful).toBeGreaterThan(0);
    expect(emulator.stats.requests - refused).toBeGreaterThanOrEqual(0.9 * CAP * 30);
    // Visible: how stale watched tasks got, and how long requests waited for the key's budget.
    expect(await metric(stack, 'task_gateway_watched_task_read_age_seconds_count')).toBeGreaterThan(0);
    expect(await metric(stack, 'task_gateway_watched_task_read_age_seconds_bucket{le="10"}')).toBe(
      await metric(stack, 'task_gateway_watched_task_read_age_seconds_count'),
    );
    expect(await metric(stack, 'task_gateway_upstream_queue_wait_seconds_count{priority="poll"}')).toBeGreaterThan(0);
  });
});

// Gateways, emulators and sockets started by the helpers are disposed after each test (test/helpers/leftovers.ts).
describe('keys that cannot hurt each other', () => {
  let stack: Stack;

  it('costs one upstream request for a rejected key, however many ids or subscriptions it brings', async () => {
    stack = await startStack();
    const ids = Array.from({ length: 100 }, (_, i) => `task-${i}`);
    const { data, errors } = await stack.gql(`query($ids: [ID!]!) { tasks(ids: $ids) { __typename } }`, { ids }, 'rejected-key-1');
    expect(data.tasks).toHaveLength(100);
    expect(errors).toHaveLength(100);
    expect(errors!.every((error) => error.extensions?.code === 'UNAUTHENTICATED')).toBe(true);
    expect(stack.emulator!.stats.requests).toBe(1);

    // A burst of subscriptions of another rejected key: one request too.
    const sockets = [connectWs(stack.gatewayUrl, 'rejected-key-2'), connectWs(stack.gatewayUrl, 'rejected-key-2')];
    const watches = ids.map((id, i) => watch(sockets[i % 2]!, id));
    await eventually(() => expect(watches.every((w) => w.results.length === 1)).toBe(true));
    expect(watches.every((w) => w.states()[0] === 'error:UNAUTHENTICATED')).toBe(true);
    expect(stack.emulator!.stats.requests).toBe(2);
    expect(stack.gateway.poller.stats().loops).toBe(0);
    // 99 reads and 99 subscriptions were refused without an upstream call.
    expect(await metric(stack, 'task_gateway_upstream_fail_fast_total')).toBe(198);
  });

  it("does not delay another key's task(id) beyond a second while one key holds 130 submits with waitSeconds: 60", async () => {
    // Tasks stay queued for two minutes: each `Prefer: wait=60` holds its request for a minute.
    stack = await startStack({ emulator: { queuedMs: 120_000 } });
    const submit = (key: string, wait: number) =>
      stack.gql(`mutation($w: Int) { submitTask(input: { model: "m", waitSeconds: $w }) { ... on BaseTask { id } } }`, { w: wait }, key);
    const other = (await submit('sk-other', 0)).data.submitTask.id as string;
    // The busy key is known to the upstream already, so it may use its whole in-flight bound (8).
    await submit('sk-busy', 0);
    // Sent by hand, so that the test can give up on them at its end (the gateway's stop then has nothing to wait for).
    const giveUp = new AbortController();
    const long = Array.from({ length: 130 }, () =>
      fetch(`${stack.gatewayUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-busy' },
        body: JSON.stringify({ query: 'mutation { submitTask(input: { model: "m", waitSeconds: 60 }) { __typename } }' }),
        signal: giveUp.signal,
      }).catch(() => null),
    );
    await eventually(() => expect(stack.gateway.requestScheduler.stats()).toMatchObject({ inFlight: 8, queued: 122 }));
    expect(stack.emulator!.stats.submits).toBe(2 + 8);
    const requests = stack.emulator!.stats.requests;
    const { data, errors } = await stack.gql(
      `query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id } } }`,
      { id: other },
      'sk-other',
    );
    expect(errors).toBeUndefined();
    expect(data.task.id).toBe(other);
    // Answered while every long submit is still held upstream or queued (each holds 60 s): the order of sends shows
    // that the other key's read went ahead of all of them, with no clock involved. One request reached the upstream.
    expect(stack.gateway.requestScheduler.stats()).toMatchObject({ inFlight: 8, queued: 122 });
    expect(stack.emulator!.stats).toMatchObject({ submits: 2 + 8, requests: requests + 1 });
    giveUp.abort();
    await Promise.all(long);
  });

  it("answers a watched task's task(id) like any query: ahead of the key's first reads and polls", async () => {
    stack = await startStack({ env: { UPSTREAM_RATE_LIMIT_PER_KEY: '10' }, emulator: { processingMs: 3_600_000 } });
    const ids = await createTasks(stack.emulator!, 'sk-watched', 300);
    // Three sockets: a connection holds at most 100 subscriptions.
    const sockets = [0, 1, 2].map(() => connectWs(stack.gatewayUrl, 'sk-watched'));
    const watches = ids.map((id, i) => watch(sockets[i % 3]!, id));
    // 300 first reads at 10 requests/s: the last of them waits about 30 s.
    await eventually(() => expect(stack.gateway.requestScheduler.stats().queued).toBeGreaterThan(100));
    const last = ids.at(-1)!;
    const { data, errors } = await stack.gql(`query($id: ID!) { task(id: $id) { ... on BaseTask { id } } }`, { id: last }, 'sk-watched');
    expect(errors).toBeUndefined();
    expect(data.task.id).toBe(last);
    // Most first reads still wait (at 10 requests/s they drain for about 30 s): the query went ahead of them, not after.
    expect(stack.gateway.requestScheduler.stats().queued).toBeGreaterThan(50);
    // The answer reached the watcher of that task too, long before its own read's turn.
    await eventually(() => expect(watches.at(-1)!.results).toHaveLength(1));
    expect(stack.gateway.requestScheduler.stats().queued).toBeGreaterThan(20);
  });

  it('refuses a watched task past MAX_LOOPS_PER_KEY with TOO_MANY_SUBSCRIPTIONS, and still answers queries', async () => {
    stack = await startStack({ env: { MAX_LOOPS_PER_KEY: '2' }, emulator: { processingMs: 3_600_000 } });
    const ids = await createTasks(stack.emulator!, 'sk-capped', 3);
    const socket = connectWs(stack.gatewayUrl, 'sk-capped');
    const first = [watch(socket, ids[0]!), watch(socket, ids[1]!)];
    await eventually(() => expect(first.every((w) => w.results.length === 1)).toBe(true));
    const refused = watch(socket, ids[2]!);
    await eventually(() => expect(refused.states()).toEqual(['error:TOO_MANY_SUBSCRIPTIONS']));
    expect(refused.results[0]!.errors![0]!.message).toMatch(/MAX_LOOPS_PER_KEY/);
    const { data } = await stack.gql(`query($id: ID!) { task(id: $id) { ... on BaseTask { id } } }`, { id: ids[2] }, 'sk-capped');
    expect(data.task.id).toBe(ids[2]);
    expect(first.every((w) => !w.completed && w.error === undefined)).toBe(true);
  });
});
