import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PollTimeoutError, TooManySubscriptionsError } from '../../src/errors.ts';
import { createTaskPoller, type TaskPoller } from '../../src/pollers/task-poller.ts';
import type { TaskEvent } from '../../src/pollers/task-sink.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { TaskNotFoundError, UnauthenticatedError } from '../../src/upstream/errors.ts';
import { createLocalBudget } from '../../src/upstream/key-budget.ts';
import { createRequestScheduler } from '../../src/upstream/request-scheduler.ts';
import { createScheduledClient } from '../../src/upstream/scheduled-client.ts';
import type { TaskSnapshot } from '../../src/upstream/task-snapshot.ts';
import { createTasksClient, type TasksClient } from '../../src/upstream/tasks-client.ts';
import { createManualClock, createManualScheduler, eventually, type ManualScheduler } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';
import { type ScriptedUpstream, startScriptedUpstream } from '../helpers/scripted-upstream.ts';

const ID = 'task-scripted';
const alice = createCredential('sk-alice');

/** Reads a sink in the background, recording what arrives. */
function collect(iterable: AsyncIterable<TaskEvent>) {
  const events: TaskEvent[] = [];
  let ended = false;
  const done = (async () => {
    for await (const event of iterable) events.push(event);
    ended = true;
  })();
  const describe = () => events.map((event) => (event instanceof Error ? event.name : `${event.status}:${event.progress}`));
  return { events, describe, done, ended: () => ended };
}

describe('the shared task poller', () => {
  let upstream: ScriptedUpstream;
  let client: TasksClient;
  let scheduler: ManualScheduler;
  let poller: TaskPoller;
  const clock = createManualClock();

  beforeEach(async () => {
    upstream = await startScriptedUpstream(ID);
    // A 'hang' fault ends at this deadline; long enough that no answer of a busy machine reaches it.
    client = createTasksClient({ baseUrl: upstream.url, timeoutMs: 2_000, now: clock.now });
    scheduler = createManualScheduler(clock);
    track(() => client.close());
    poller = createTaskPoller({
      client,
      now: clock.now,
      scheduler,
      random: () => 0.5,
      intervalMs: 2_000,
      maxIntervalMs: 5_000,
      timeoutMs: 600_000,
    });
  });
  afterEach(() => poller.dispose());

  /** Fires the next poll and waits until its request has been answered and handled. */
  async function tick() {
    const before = upstream.gets();
    expect(scheduler.runNext()).toBe(true);
    await eventually(() => expect(upstream.gets()).toBe(before + 1));
    await eventually(() => expect(poller.stats().inflight).toBe(0));
    await new Promise((resolve) => setImmediate(resolve));
  }

  it('gives the current state first, then only changes, then one terminal state and the end', async () => {
    upstream.script({ status: 'queued', progress: '' });
    const watcher = collect(poller.subscribe(alice, ID));
    await eventually(() => expect(watcher.describe()).toEqual(['QUEUED:0']));
    upstream.script(
      { status: 'queued', progress: '' },
      { status: 'processing', progress: '10%' },
      { status: 'processing', progress: '10%' },
      { status: 'processing', progress: '55%' },
      { status: 'completed', progress: '100%' },
    );
    for (let i = 0; i < 5; i++) await tick();
    await watcher.done;
    expect(watcher.describe()).toEqual(['QUEUED:0', 'PROCESSING:10', 'PROCESSING:55', 'COMPLETED:100']);
    expect(poller.stats()).toMatchObject({ loops: 0, subscribers: 0 });
    expect(scheduler.pending()).toEqual([]);
  });

  it('never steps backwards when the upstream answers an older state', async () => {
    upstream.script(
      { status: 'processing', progress: 40 },
      { status: 'processing', progress: 30 },
      { status: 'queued', progress: 0 },
      { status: 'processing', progress: 60 },
    );
    const watcher = collect(poller.subscribe(alice, ID));
    await eventually(() => expect(watcher.events).toHaveLength(1));
    for (let i = 0; i < 3; i++) await tick();
    expect(watcher.describe()).toEqual(['PROCESSING:40', 'PROCESSING:60']);
  });

  it('stretches the interval while nothing changes, up to the maximum, and snaps back on a change', async () => {
    upstream.script({ status: 'queued' });
    collect(poller.subscribe(alice, ID));
    // The first state is a change: the normal interval follows it.
    await eventually(() => expect(scheduler.pending()).toEqual([2_000]));
    await tick();
    expect(scheduler.pending()).toEqual([3_000]);
    await tick();
    expect(scheduler.pending()).toEqual([4_500]);
    await tick();
    expect(scheduler.pending()).toEqual([5_000]);
    await tick();
    expect(scheduler.pending()).toEqual([5_000]);
    upstream.script({ status: 'processing', progress: 5 });
    await tick();
    expect(scheduler.pending()).toEqual([2_000]);
  });

  it('spreads loops with jitter so they do not poll in step', async () => {
    // A spread of random draws, one per loop's schedule: as Math.random would, but repeatable.
    let draw = 0;
    const jittered = createTaskPoller({ client, now: clock.now, scheduler, random: () => ((draw++ * 0.618_034) % 1) * 0.999 });
    track(() => jittered.dispose());
    const loops = 20;
    for (let i = 0; i < loops; i++) collect(jittered.subscribe(createCredential(`sk-jitter-${i}`), ID));
    await eventually(() => expect(scheduler.pending()).toHaveLength(loops));
    const delays = scheduler.pending();
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(1_800);
      expect(delay).toBeLessThanOrEqual(2_200);
    }
    // Started together, yet no two loops poll at the same instant, and they cover most of the ±10 % band.
    expect(new Set(delays).size).toBe(loops);
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(300);
  });

  it('shares one fetch between every watcher and reader that asks at once', async () => {
    const watchers = Array.from({ length: 50 }, () => collect(poller.subscribe(alice, ID)));
    const reads = await Promise.all(Array.from({ length: 20 }, () => poller.read(alice, ID)));
    await eventually(() => expect(watchers.every((watcher) => watcher.events.length === 1)).toBe(true));
    expect(upstream.gets()).toBe(1);
    expect(new Set(reads).size).toBe(1);
    // A fresh snapshot serves a newcomer and a query with no upstream call.
    const late = collect(poller.subscribe(alice, ID));
    await poller.read(alice, ID);
    await eventually(() => expect(late.events).toHaveLength(1));
    expect(upstream.gets()).toBe(1);
  });

  it('keeps a finished task so that later readers and watchers cost no upstream call', async () => {
    upstream.script({ status: 'completed' });
    const first = collect(poller.subscribe(alice, ID));
    await first.done;
    const gets = upstream.gets();
    const later = collect(poller.subscribe(alice, ID));
    await later.done;
    expect(later.describe()).toEqual(['COMPLETED:100']);
    expect((await poller.read(alice, ID)).status).toBe('COMPLETED');
    expect(upstream.gets()).toBe(gets);
    // Per credential: another key still asks the upstream.
    await poller.read(createCredential('sk-bob'), ID);
    expect(upstream.gets()).toBe(gets + 1);
  });

  it('stops the loop and aborts its request when the last watcher leaves', async () => {
    upstream.script({ fault: 'hang' });
    const sink = poller.subscribe(alice, ID);
    await eventually(() => expect(upstream.gets()).toBe(1));
    expect(poller.stats()).toMatchObject({ loops: 1, subscribers: 1, inflight: 1 });
    await sink.return!();
    expect(poller.stats()).toMatchObject({ loops: 0, subscribers: 0 });
    await eventually(() => expect(upstream.aborted()).toBe(1));
    expect(scheduler.pending()).toEqual([]);
  });

  it('backs off on faults without ending the watch, honours Retry-After and resumes the normal pace', async () => {
    upstream.script({ status: 'processing', progress: 10 });
    const watcher = collect(poller.subscribe(alice, ID));
    await eventually(() => expect(watcher.events).toHaveLength(1));
    upstream.script(
      { fault: 500 },
      { fault: 'html502' },
      { fault: 'garbage' },
      { fault: 'wrong-shape' },
      { fault: 'reset' },
      { fault: 'hang' },
      { fault: 429, retryAfter: '7' },
      { status: 'processing', progress: 20 },
    );
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      await tick();
      delays.push(scheduler.pending()[0]!);
    }
    // Exponential from the base interval (equal jitter at random 0.5: 3/4 of the ceiling).
    expect(delays.slice(0, 6)).toEqual([1_500, 3_000, 6_000, 12_000, 22_500, 22_500]);
    expect(delays[6]).toBe(7_000);
    await tick();
    expect(watcher.describe()).toEqual(['PROCESSING:10', 'PROCESSING:20']);
    expect(watcher.ended()).toBe(false);
    expect(scheduler.pending()).toEqual([2_000]);
  });

  it('waits until reset_at when a 429 gives no Retry-After', async () => {
    upstream.script({ status: 'queued' });
    collect(poller.subscribe(alice, ID));
    await eventually(() => expect(scheduler.pending()).toHaveLength(1));
    const resetAt = Math.floor(clock.now() / 1000) + 2 + 20; // Unix seconds, about 20 s after the next poll
    upstream.script({ fault: 429, resetAt }, { status: 'queued' });
    await tick();
    expect(scheduler.pending()[0]).toBe(resetAt * 1000 - clock.now());
    expect(scheduler.pending()[0]).toBeGreaterThan(19_000);
  });

  it.each([
    [404, TaskNotFoundError],
    [401, UnauthenticatedError],
  ] as const)('ends the watch with a typed error on %s', async (status, type) => {
    upstream.script({ fault: status });
    const watcher = collect(poller.subscribe(alice, ID));
    await watcher.done;
    expect(watcher.events).toHaveLength(1);
    expect(watcher.events[0]).toBeInstanceOf(type);
    expect(poller.stats().loops).toBe(0);
  });

  it('ends the watch with PollTimeoutError when the task outlives the poll timeout', async () => {
    const short = createTaskPoller({ client, now: clock.now, scheduler, random: () => 0.5, timeoutMs: 10_000 });
    track(() => short.dispose());
    const startedAt = clock.now();
    upstream.script({ status: 'processing', progress: 1 });
    const watcher = collect(short.subscribe(alice, ID));
    await eventually(() => expect(watcher.events).toHaveLength(1));
    // Polls at 2 s, 5 s, 9.5 s and 14.5 s (the interval stretches): the last one finds the loop too old.
    for (let polls = 0; polls < 10 && !watcher.ended(); polls++) {
      expect(scheduler.runNext()).toBe(true);
      await eventually(() => expect(watcher.ended() || scheduler.pending().length === 1).toBe(true));
    }
    expect(watcher.ended()).toBe(true);
    expect(watcher.describe()).toEqual(['PROCESSING:1', 'PollTimeoutError']);
    expect(watcher.events.at(-1)).toBeInstanceOf(PollTimeoutError);
    expect(clock.now() - startedAt).toBeGreaterThanOrEqual(10_000);
    expect(short.stats().loops).toBe(0);
    expect(scheduler.pending()).toEqual([]);
  });

  it('holds at most one pending state for a slow watcher, without delaying the others', async () => {
    const slow = poller.subscribe(alice, ID);
    const fast = collect(poller.subscribe(alice, ID));
    await eventually(() => expect(fast.events).toHaveLength(1));
    for (let progress = 1; progress <= 60; progress++) {
      upstream.script({ status: 'processing', progress });
      await tick();
    }
    upstream.script({ status: 'completed' });
    await tick();
    await fast.done;
    expect(fast.events).toHaveLength(62);
    // The slow one never read: it holds only the newest undelivered state, the terminal one.
    const slowEvents: TaskEvent[] = [];
    for await (const event of slow) slowEvents.push(event);
    expect(slowEvents.map((event) => (event as TaskSnapshot).status)).toEqual(['COMPLETED']);
  });

  it('re-reads at once when nudged, and again after an in-flight request', async () => {
    upstream.script({ status: 'queued' });
    const watcher = collect(poller.subscribe(alice, ID));
    await eventually(() => expect(watcher.events).toHaveLength(1));
    // At once: the nudge polls with no timer firing.
    upstream.script({ status: 'processing', progress: 10 });
    expect(poller.nudge(alice, ID)).toBe(true);
    await eventually(() => expect(watcher.describe()).toEqual(['QUEUED:0', 'PROCESSING:10']));
    expect(upstream.gets()).toBe(2);
    // A nudge while a request is in flight: that request's answer is already old, so the loop reads again when it ends.
    const release = upstream.hold();
    upstream.script({ status: 'processing', progress: 20 }, { status: 'completed' });
    expect(poller.nudge(alice, ID)).toBe(true);
    await eventually(() => expect(upstream.gets()).toBe(3));
    expect(poller.stats().inflight).toBe(1);
    expect(poller.nudge(alice, ID)).toBe(true);
    release();
    await eventually(() => expect(watcher.describe()).toEqual(['QUEUED:0', 'PROCESSING:10', 'PROCESSING:20', 'COMPLETED:100']));
    await watcher.done;
    // One request for the nudges that came during the first, not one each.
    expect(upstream.gets()).toBe(4);
    expect(poller.nudge(alice, 'task-nobody-watches')).toBe(false);
  });

  it('never lets one credential see the loop of another', async () => {
    upstream.script({ status: 'processing', progress: 50 });
    const own = collect(poller.subscribe(alice, ID));
    await eventually(() => expect(own.events).toHaveLength(1));
    upstream.script({ fault: 404 });
    const intruder = collect(poller.subscribe(createCredential('sk-mallory'), ID));
    await intruder.done;
    expect(intruder.events).toHaveLength(1);
    expect(intruder.events[0]).toBeInstanceOf(TaskNotFoundError);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer sk-mallory');
    expect(own.ended()).toBe(false);
  });

  it('bounds the upstream requests in flight over all loops (through the request scheduler)', async () => {
    const requests = createRequestScheduler({ maxInFlight: 3, now: clock.now, timers: scheduler });
    const bounded = createTaskPoller({ client: createScheduledClient(client, requests), now: clock.now, scheduler });
    // Keys the upstream has not accepted yet send one at a time: use three keys.
    track(() => bounded.dispose());
    track(() => requests.dispose());
    upstream.script({ fault: 'hang' });
    for (let i = 0; i < 12; i++) collect(bounded.subscribe(createCredential(`sk-bound-${i % 3}`), `task-${i}`));
    await eventually(() => expect(upstream.gets()).toBe(3));
    expect(bounded.stats()).toMatchObject({ loops: 12, inflight: 12 });
    expect(requests.stats()).toMatchObject({ inFlight: 3, queued: 9 });
    bounded.dispose();
    expect(bounded.stats().loops).toBe(0);
    await eventually(() => expect(requests.stats()).toMatchObject({ inFlight: 0, queued: 0 }));
    requests.dispose();
  });

  it("sends a webhook's re-read and a new watcher's first read ahead of the key's waiting polls", async () => {
    // One request a second for five watched tasks polled every 2 s: polls wait in the key's queue.
    const budget = createLocalBudget({ now: clock.now, initialRatePerSec: 1, maxRatePerSec: 1, burstMs: 0 });
    const requests = createRequestScheduler({ budget, now: clock.now, timers: scheduler });
    const paced = createTaskPoller({
      client: createScheduledClient(client, requests),
      now: clock.now,
      scheduler,
      random: () => 0.5,
      intervalMs: 2_000,
      maxIntervalMs: 2_000,
    });
    track(() => paced.dispose());
    track(() => requests.dispose());
    upstream.script({ status: 'processing', progress: 5 });
    const drive = async (ms: number) => {
      for (let left = ms; left > 0; left -= 100) {
        scheduler.advance(100);
        await new Promise((resolve) => setImmediate(resolve));
        await eventually(() => expect(requests.stats().inFlight).toBe(0));
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const watchers = [1, 2, 3, 4, 5].map((i) => collect(paced.subscribe(alice, `task-${i}`)));
    await drive(10_000);
    expect(watchers.every((watcher) => watcher.events.length > 0)).toBe(true);
    expect(requests.stats().queued).toBeGreaterThan(0);
    const sent = upstream.requests.length;
    expect(paced.nudge(alice, 'task-3')).toBe(true);
    collect(paced.subscribe(alice, 'task-6'));
    await drive(2_000);
    expect(upstream.requests.slice(sent, sent + 2).map((request) => request.url.split('/').pop())).toEqual(['task-3', 'task-6']);
  });

  it('caps the loops per key and in total with TOO_MANY_SUBSCRIPTIONS, and still answers reads', async () => {
    const capped = createTaskPoller({ client, now: clock.now, scheduler, maxLoopsPerKey: 2, maxLoops: 3 });
    track(() => capped.dispose());
    upstream.script({ status: 'processing', progress: 5 });
    const bob = createCredential('sk-bob');
    const watchers = [collect(capped.subscribe(alice, 'task-a1')), collect(capped.subscribe(alice, 'task-a2'))];
    const overKey = collect(capped.subscribe(alice, 'task-a3'));
    await overKey.done;
    expect(overKey.events[0]).toBeInstanceOf(TooManySubscriptionsError);
    expect((overKey.events[0] as Error).message).toContain('MAX_LOOPS_PER_KEY');
    // A second watcher of a task already watched needs no new loop.
    watchers.push(collect(capped.subscribe(alice, 'task-a1')));
    watchers.push(collect(capped.subscribe(bob, 'task-b1')));
    const overAll = collect(capped.subscribe(bob, 'task-b2'));
    await overAll.done;
    expect((overAll.events[0] as Error).message).toContain('MAX_LOOPS');
    expect(capped.stats()).toMatchObject({ loops: 3, subscribers: 4 });
    await expect(capped.read(alice, 'task-a3')).resolves.toMatchObject({ status: 'PROCESSING' });
    for (const watcher of watchers) await eventually(() => expect(watcher.events).toHaveLength(1));
    expect(watchers.every((watcher) => !(watcher.events[0] instanceof Error))).toBe(true);
    capped.dispose();
  });

  it('ends the loop of a task the upstream answers 404 at once', async () => {
    upstream.script({ fault: 404 });
    const watcher = collect(poller.subscribe(alice, 'task-missing'));
    await watcher.done;
    expect(watcher.events[0]).toBeInstanceOf(TaskNotFoundError);
    expect(poller.stats()).toMatchObject({ loops: 0, subscribers: 0 });
    expect(scheduler.pending()).toEqual([]);
  });

  it('leaves nothing behind after 10,000 subscribe/unsubscribe cycles', async () => {
    upstream.script({ status: 'processing', progress: 5 });
    const anchor = collect(poller.subscribe(alice, ID));
    await eventually(() => expect(anchor.events).toHaveLength(1));
    for (let i = 0; i < 10_000; i++) {
      const sink = poller.subscribe(i % 2 ? alice : createCredential(`sk-user-${i % 10}`), i % 3 ? ID : `task-${i % 7}`);
      await sink.return!();
    }
    expect(poller.stats()).toMatchObject({ loops: 1, subscribers: 1 });
    expect(scheduler.pending()).toHaveLength(1);
    poller.dispose();
    expect(poller.stats()).toMatchObject({ loops: 0, subscribers: 0 });
    expect(scheduler.pending()).toEqual([]);
  });
});
