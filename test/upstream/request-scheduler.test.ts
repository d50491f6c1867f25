import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QueueTimeoutError } from '../../src/errors.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { RateLimitedError, UnauthenticatedError } from '../../src/upstream/errors.ts';
import { createLocalBudget, type KeyBudget } from '../../src/upstream/key-budget.ts';
import { createRequestScheduler, type RequestScheduler, type RequestSchedulerOptions } from '../../src/upstream/request-scheduler.ts';
import { createScheduledClient } from '../../src/upstream/scheduled-client.ts';
import { createTasksClient, type TasksClient } from '../../src/upstream/tasks-client.ts';
import { createManualClock, createManualScheduler, eventually, type ManualScheduler } from '../helpers/clock.ts';
import { json, type StandIn, startStandIn } from '../helpers/stand-in.ts';

const alice = createCredential('sk-alice');
const task = (id: string) => ({
  task_id: id,
  status: 'processing',
  model: 'm',
  action: 'generate',
  created_at: 1_720_000_000,
  progress: 5,
});

describe('the per-key request scheduler', () => {
  const clock = createManualClock();
  let scheduler: ManualScheduler;
  let standIn: StandIn;
  /** What the stand-in received: `<method> <id or "submit">` and the clock when it arrived. */
  let received: Array<{ what: string; at: number; key: string }>;
  /** Answers a 429 body to the next requests, then serves tasks. */
  let refuse: Array<Record<string, unknown>>;
  let raw: TasksClient;
  let requests: RequestScheduler;
  let client: TasksClient;

  beforeEach(async () => {
    scheduler = createManualScheduler(clock);
    received = [];
    refuse = [];
    standIn = await startStandIn((request, response) => {
      const key = String(request.headers.authorization).slice('Bearer '.length);
      const id = decodeURIComponent(request.url.split('/')[3] ?? 'submit');
      received.push({ what: `${request.method} ${id}`, at: clock.now(), key });
      if (key === 'sk-bad') return json(response, 401, { error: { message: 'Invalid key' } });
      if (id.startsWith('hang-')) return;
      const refusal = refuse.shift();
      if (refusal) return json(response, 429, { error: refusal });
      json(response, 200, task(id === 'submit' ? 'task-new' : id));
    });
    raw = createTasksClient({ baseUrl: standIn.url, timeoutMs: 5_000, now: clock.now });
  });
  afterEach(async () => {
    requests.dispose();
    // The stand-in first: it cuts the hanging requests, so that the pool closes at once.
    await standIn.stop();
    await raw.close();
  });

  function start(options: RequestSchedulerOptions = {}, budget?: KeyBudget) {
    requests = createRequestScheduler({
      budget: budget ?? createLocalBudget({ now: clock.now }),
      now: clock.now,
      timers: scheduler,
      ...options,
    });
    client = createScheduledClient(raw, requests);
  }

  /** A budget of exactly `rate` requests per second, no burst. */
  const paced = (rate: number) => createLocalBudget({ now: clock.now, initialRatePerSec: rate, maxRatePerSec: rate, burstMs: 0 });

  const tick = () => new Promise((resolve) => setImmediate(resolve));
  /** Lets every request sent by now be answered. */
  async function settle() {
    await tick();
    await eventually(() => expect(requests.stats().inFlight).toBe(0));
    await tick();
  }
  /** Moves the clock by `ms` in steps, letting every request sent on the way be answered before the next step. */
  async function drive(ms: number, stepMs = 10) {
    await settle();
    for (let left = ms; left > 0; left -= stepMs) {
      scheduler.advance(Math.min(stepMs, left));
      await settle();
    }
  }

  it('sends writes, then first reads, then polls by the oldest last read, whatever their arrival order', async () => {
    start({}, paced(1));
    const done: Array<Promise<unknown>> = [];
    const poll = (id: string, lastReadAt: number, onQueued?: (promote: () => void) => void) =>
      done.push(client.getTask(id, alice, { priority: 'poll', lastReadAt, onQueued }));
    // The first request of an idle key goes at once and takes this second's slot; the rest wait, in order.
    poll('task-0', 5_000);
    poll('task-a', 3_000);
    poll('task-b', 1_000);
    poll('task-c', 2_000);
    let promote: () => void = () => undefined;
    poll('task-d', 4_000, (move) => {
      promote = move;
    });
    done.push(client.getTask('task-first', alice, { priority: 'first' }));
    done.push(client.submitTask({ model: 'm' }, alice));
    // A new watcher now waits for task-d: its poll moves ahead of the other polls.
    promote();
    await drive(7_000, 100);
    await Promise.all(done);
    expect(received.map((request) => request.what)).toEqual([
      'GET task-0',
      'POST submit',
      'GET task-first',
      'GET task-d',
      'GET task-b',
      'GET task-c',
      'GET task-a',
    ]);
    // One a second: the budget paced them.
    expect(received.map((request) => request.at - received[0]!.at)).toEqual([0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000]);
  });

  it('costs one upstream request for a burst of reads with a key the upstream rejects, then fails fast for 30 s', async () => {
    start();
    const bad = createCredential('sk-bad');
    const outcomes = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => client.getTask(`task-${i}`, bad)));
    expect(outcomes.every((outcome) => outcome.status === 'rejected' && outcome.reason instanceof UnauthenticatedError)).toBe(true);
    expect(received).toHaveLength(1);
    await expect(client.submitTask({ model: 'm' }, bad)).rejects.toThrow(/refused here for 30 s/);
    expect(received).toHaveLength(1);
    // Another key is not affected.
    await expect(client.getTask('task-1', alice)).resolves.toMatchObject({ id: 'task-1' });
    clock.advance(30_001);
    await expect(client.getTask('task-1', bad)).rejects.toBeInstanceOf(UnauthenticatedError);
    expect(received.filter((request) => request.key === 'sk-bad')).toHaveLength(2);
  });

  it('refuses a request past the bound of waiting requests of a key with RATE_LIMITED', async () => {
    start({ maxQueuedPerKey: 5 }, paced(1));
    const waiting = [client.getTask('task-0', alice, { priority: 'poll' })];
    await settle();
    // The first went at once; five wait for their slot; the seventh overflows.
    for (let i = 1; i <= 5; i++) waiting.push(client.getTask(`task-${i}`, alice, { priority: 'poll' }));
    const overflow = await client.getTask('task-over', alice, { priority: 'poll' }).catch((error) => error);
    expect(overflow).toBeInstanceOf(RateLimitedError);
    expect(overflow.message).toMatch(/already has 5 upstream requests waiting/);
    expect(requests.stats().queued).toBe(5);
    await drive(5_000, 100);
    await expect(Promise.all(waiting)).resolves.toHaveLength(6);
  });

  it('fails a query that waited its bound in the queue with TIMEOUT, and one that could not go in time with RATE_LIMITED', async () => {
    start({ maxQueueWaitMs: 2_000 });
    // The key's first request hangs: a key not yet accepted has one request in flight, so the next waits.
    const hanging = client.getTask('hang-1', alice).catch((error) => error);
    await eventually(() => expect(received).toHaveLength(1));
    const queued = client.getTask('task-2', alice).catch((error) => error);
    scheduler.advance(2_000);
    const timedOut = await queued;
    expect(timedOut).toBeInstanceOf(QueueTimeoutError);
    expect(timedOut.clientCode).toBe('TIMEOUT');
    expect(timedOut.message).toMatch(/waited 2000 ms in the gateway's queue .* was not sent/);
    expect(received).toHaveLength(1);

    // A quota 429 said the key's window resets in 60 s: a query is refused at once, with how long to wait.
    const budget = paced(10);
    requests.dispose();
    start({ maxQueueWaitMs: 2_000 }, budget);
    budget.learn(alice.hash, { kind: 'quota', ratePerSec: 10, resumeAt: clock.now() + 60_000 });
    const refused = await client.getTask('task-3', alice).catch((error) => error);
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect(refused).toMatchObject({ fromUpstream: false, retryAfterMs: 60_000 });
    expect(refused.message).toMatch(/would wait about 60 s in the gateway/);
    expect(received).toHaveLength(1);
    void hanging;
  });

  it("keeps a key within its in-flight bound, so that its long requests never hold another key's", async () => {
    start({ maxInFlightPerKey: 8 });
    await client.getTask('task-0', alice);
    const long = Array.from({ length: 20 }, (_, i) => client.getTask(`hang-${i}`, alice).catch((error) => error));
    await eventually(() => expect(received).toHaveLength(9));
    expect(requests.stats()).toMatchObject({ inFlight: 8, queued: 12 });
    await expect(client.getTask('task-bob', createCredential('sk-bob'))).resolves.toMatchObject({ id: 'task-bob' });
    expect(received.filter((request) => request.what.startsWith('GET hang-'))).toHaveLength(8);
    void long;
  });

  it('learns the pace from a quota 429, waits for reset_at, then sends one request at a time at the learnt pace', async () => {
    start();
    // Known to the upstream, then twenty polls at once; the first answer is a 429: 2 per second, reset in 5 s.
    await client.getTask('task-0', alice);
    const t0 = clock.now();
    refuse.push({ code: 'quota_window_exceeded', message: 'slow down', window: '1s', used: 3, cap: 2, reset_at: t0 / 1000 + 5 });
    const polls = Array.from({ length: 20 }, (_, i) => client.getTask(`task-${i + 1}`, alice, { priority: 'poll', lastReadAt: i }));
    await drive(15_000);
    await Promise.all(polls);
    // A key never refused before may burst (8 in flight at once); after the 429 nothing until reset_at,
    // then one at a time at 95 % of 2/s (526 ms apart): the waiting polls never retry together.
    const burst = received.filter((request) => request.at === t0 && request.what !== 'GET task-0').length;
    expect(burst).toBeLessThanOrEqual(8);
    const after = received.filter((request) => request.at > t0).map((request) => request.at - t0);
    expect(after[0]).toBeGreaterThanOrEqual(5_000);
    for (let i = 1; i < after.length; i++) expect(after[i]! - after[i - 1]!).toBeGreaterThanOrEqual(520);
    expect(received).toHaveLength(1 + 20 + 1);
  });
});
