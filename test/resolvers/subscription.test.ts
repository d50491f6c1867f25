import { createClient as createSseClient } from 'graphql-sse';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';
import { useManualStack } from '../helpers/manual-stack.ts';
import { type Watch, watch } from '../helpers/ws-client.ts';

const ALICE = 'sk-alice';
const BOB = 'sk-bob';
const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "fox" }) { ... on BaseTask { id } } }`;
/**
 * What every watcher of a task submitted at T sees, polled every 2 s while it changes (queued 3 s, then
 * 10 s of processing). The newer wire format's "" right after queueing and its "0%" at T+2 s are both
 * progress 0: that poll is no change, so the interval stretches to 3 s once.
 */
const LIFE = [
  'QueuedTask:QUEUED:0',
  'ProcessingTask:PROCESSING:20',
  'ProcessingTask:PROCESSING:40',
  'ProcessingTask:PROCESSING:60',
  'ProcessingTask:PROCESSING:80',
  'CompletedTask:COMPLETED:100',
];
/** The poll intervals of that life: 2 s after each change, 3 s after the quiet poll at T+2 s. */
const INTERVALS = [2_000, 3_000, 2_000, 2_000, 2_000, 2_000];
/** GETs over that life: one per state, plus the quiet poll. */
const GETS = LIFE.length + 1;

describe('taskUpdated on the shared poller', () => {
  const shared = useManualStack();
  const { scheduler } = shared;

  const submit = async (key = ALICE): Promise<string> => (await shared.stack.gql(SUBMIT, {}, key)).data.submitTask.id;
  const client = (key: string | null = ALICE) => shared.connect(key);
  const gets = (id: string) => shared.stack.emulator!.stats.gets.get(id) ?? 0;

  /** Fires the poll timer and waits until the upstream answered it. */
  async function tick(id: string) {
    const before = gets(id);
    expect(scheduler.runNext()).toBe(true);
    await eventually(() => expect(gets(id)).toBe(before + 1));
    await eventually(() => expect(shared.stack.gateway.poller.stats().inflight).toBe(0));
  }

  /** Fires poll after poll until the loop ends. */
  async function runToEnd(id: string) {
    while (scheduler.pending().length > 0) await tick(id);
  }

  it('serves 1,000 subscribers on 10 sockets with one upstream GET per poll interval, all seeing the same ordered states', async () => {
    const id = await submit();
    const sockets = Array.from({ length: 10 }, () => client());
    const watchers = sockets.flatMap((socket) => Array.from({ length: 100 }, () => watch(socket, id)));
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 15_000);
    expect(gets(id)).toBe(1);
    expect(shared.stack.gateway.poller.stats()).toMatchObject({ loops: 1, subscribers: 1_000 });
    const intervals: number[] = [];
    for (let polls = 2; scheduler.pending().length > 0; polls++) {
      expect(scheduler.pending()).toHaveLength(1);
      intervals.push(...scheduler.pending());
      await tick(id);
      expect(gets(id)).toBe(polls);
    }
    expect(intervals).toEqual(INTERVALS);
    expect(gets(id)).toBe(GETS);
    await eventually(() => expect(watchers.every((w) => w.completed)).toBe(true), 15_000);
    for (const watcher of watchers) expect(watcher.states()).toEqual(LIFE);
    // The loop stopped with the terminal state: no timer left, no more GETs.
    expect(shared.stack.gateway.poller.stats().loops).toBe(0);
    expect(scheduler.pending()).toEqual([]);
  });

  it('delivers the same states over SSE, from the same loop as WebSocket watchers', async () => {
    const id = await submit();
    const sse = createSseClient({
      url: `${shared.stack.gatewayUrl}/graphql`,
      headers: { authorization: `Bearer ${ALICE}` },
      retryAttempts: 0,
    });
    track(() => sse.dispose());
    const sseStates: string[] = [];
    let sseDone = false;
    sse.subscribe(
      { query: `subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { status progress } } }`, variables: { id } },
      {
        next: (result: any) =>
          sseStates.push(`${result.data.taskUpdated.__typename}:${result.data.taskUpdated.status}:${result.data.taskUpdated.progress}`),
        error: (error) => sseStates.push(`error:${String(error)}`),
        complete: () => {
          sseDone = true;
        },
      },
    );
    const ws = watch(client(), id);
    await eventually(() => expect([sseStates.length, ws.results.length]).toEqual([1, 1]));
    await runToEnd(id);
    await eventually(() => expect(sseDone && ws.completed).toBe(true));
    expect(sseStates).toEqual(LIFE);
    expect(ws.states()).toEqual(LIFE);
    expect(gets(id)).toBe(GETS);
    sse.dispose();
  });

  it("keeps credentials apart: another key's watcher gets NOT_FOUND and nothing from the owner's loop", async () => {
    const id = await submit(ALICE);
    const owner = watch(client(ALICE), id);
    await eventually(() => expect(owner.results).toHaveLength(1));
    const intruder = watch(client(BOB), id);
    await eventually(() => expect(intruder.completed).toBe(true));
    expect(intruder.states()).toEqual(['error:NOT_FOUND']);
    expect(intruder.results[0]!.data).toBeNull();
    // The intruder's attempt was a GET of its own, with its own key: two loops, two GETs.
    expect(gets(id)).toBe(2);
    await tick(id);
    expect(owner.completed).toBe(false);
    expect(intruder.results).toHaveLength(1);
    const query = await shared.stack.gql(`query($id: ID!) { task(id: $id) { __typename } }`, { id }, BOB);
    expect(query.data.task).toBeNull();
  });

  it('stops the loop when the last subscriber leaves, and polls no more', async () => {
    const id = await submit();
    const watchers = [watch(client(), id), watch(client(), id)];
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true));
    watchers[0]!.unsubscribe();
    await eventually(() => expect(shared.stack.gateway.poller.stats().subscribers).toBe(1));
    expect(shared.stack.gateway.poller.stats().loops).toBe(1);
    watchers[1]!.unsubscribe();
    await eventually(() => expect(shared.stack.gateway.poller.stats().loops).toBe(0));
    expect(scheduler.pending()).toEqual([]);
    const before = gets(id);
    scheduler.advance(60_000);
    expect(gets(id)).toBe(before);
  });

  it("answers task queries from a watched task's fresh snapshot with no upstream call", async () => {
    const id = await submit();
    const watcher = watch(client(), id);
    await eventually(() => expect(watcher.results).toHaveLength(1));
    const before = gets(id);
    const query = await shared.stack.gql(
      `query($id: ID!) { task(id: $id) { __typename } tasks(ids: [$id, $id]) { __typename } }`,
      { id },
      ALICE,
    );
    expect(query.data.task.__typename).toBe('QueuedTask');
    expect(gets(id)).toBe(before);
  });

  it('answers a finished task to later subscribers and queries from the terminal cache', async () => {
    const id = await submit();
    const first = watch(client(), id);
    await eventually(() => expect(first.results).toHaveLength(1));
    await runToEnd(id);
    await eventually(() => expect(first.completed).toBe(true));
    const before = gets(id);
    const later = watch(client(), id);
    await eventually(() => expect(later.completed).toBe(true));
    expect(later.states()).toEqual(['CompletedTask:COMPLETED:100']);
    const query = await shared.stack.gql(`query($id: ID!) { task(id: $id) { __typename } }`, { id }, ALICE);
    expect(query.data.task.__typename).toBe('CompletedTask');
    expect(gets(id)).toBe(before);
  });

  it('refuses invalid ids, and a socket with no key and no default key, with clear errors', async () => {
    const bad = watch(client(), '../etc/passwd');
    await eventually(() => expect(bad.error ?? bad.completed).toBeTruthy());
    expect(JSON.stringify(bad.error ?? bad.results)).toContain('BAD_USER_INPUT');
    const anonymous = watch(client(null), 'task-1');
    await eventually(() => expect(anonymous.error).toBeDefined());
    expect((anonymous.error as { code: number; reason: string }).code).toBe(4403);
    expect((anonymous.error as { reason: string }).reason).toContain('No API key');
  });

  it(`refuses more than MAX_SUBSCRIPTIONS_PER_CONNECTION subscriptions on one socket`, async () => {
    const id = await submit();
    const socket = client();
    const watchers = Array.from({ length: 101 }, () => watch(socket, id));
    await eventually(() => expect(watchers.filter((w) => w.results.length === 1).length).toBe(100));
    const refused = watchers.filter((w) => w.error !== undefined);
    expect(refused).toHaveLength(1);
    expect(JSON.stringify(refused[0]!.error)).toContain('MAX_SUBSCRIPTIONS_PER_CONNECTION');
  });

  it('leaves nothing behind after 10,000 subscribe/unsubscribe cycles over WebSocket', async () => {
    const id = await submit();
    const anchor = watch(client(), id);
    await eventually(() => expect(anchor.results).toHaveLength(1));
    const resourcesBefore = process.getActiveResourcesInfo().length;
    const sockets = Array.from({ length: 5 }, () => client());
    for (let batch = 0; batch < 50; batch++) {
      const watchers: Watch[] = sockets.flatMap((socket) => Array.from({ length: 40 }, () => watch(socket, id)));
      await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true));
      for (const watcher of watchers) watcher.unsubscribe();
    }
    await eventually(() => expect(shared.stack.gateway.poller.stats()).toMatchObject({ loops: 1, subscribers: 1 }));
    expect(gets(id)).toBe(1);
    // Timers, sockets and handles: none more than before the cycles.
    await eventually(() => expect(process.getActiveResourcesInfo().length).toBeLessThanOrEqual(resourcesBefore));
    expect(scheduler.pending()).toHaveLength(1);
  });
});
