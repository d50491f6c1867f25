import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/clock.ts';
import { useManualStack } from '../helpers/manual-stack.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { connectWs, type Watch, watch } from '../helpers/ws-client.ts';

const KEY = 'sk-dashboard';
const OTHER = 'sk-other-dashboard';
const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "a fox" }) { ... on BaseTask { id } } }`;
const WATCH_MANY = `subscription($ids: [ID!]!) {
  tasksUpdated(ids: $ids) {
    __typename
    ... on BaseTask { id status progress }
    ... on ProcessingTask { estimatedCompletionAt }
    ... on TaskNotFoundError { id message }
    ... on TaskWatchError { id code }
  }
}`;
const WATCH_ONE = `subscription($id: ID!) {
  taskUpdated(id: $id) { __typename ... on BaseTask { id status progress } ... on ProcessingTask { estimatedCompletionAt } }
}`;

/** Subscribes to `tasksUpdated(ids)` and records each event as `id:typename:status:progress`. */
function watchMany(client: Client, ids: string[]) {
  const record = {
    events: [] as any[],
    errors: [] as unknown[],
    completed: false,
    of: (id: string) =>
      record.events.filter((event) => event.id === id).map((event) => `${event.__typename}:${event.status ?? ''}:${event.progress ?? ''}`),
    unsubscribe: (): void => undefined,
  };
  record.unsubscribe = client.subscribe(
    { query: WATCH_MANY, variables: { ids } },
    {
      next: (result: any) => (result.errors ? record.errors.push(result.errors) : record.events.push(result.data.tasksUpdated)),
      error: (error) => record.errors.push(error),
      complete: () => {
        record.completed = true;
      },
    },
  );
  return record;
}

describe('tasksUpdated: several tasks on one subscription, on the shared poller', () => {
  const shared = useManualStack();
  const { clock, scheduler } = shared;

  const submit = async (key = KEY): Promise<string> => (await shared.stack.gql(SUBMIT, {}, key)).data.submitTask.id;
  const client = (key = KEY) => shared.connect(key);
  const gets = (id: string) => shared.stack.emulator!.stats.gets.get(id) ?? 0;
  const allGets = () => [...shared.stack.emulator!.stats.gets.values()].reduce((sum, n) => sum + n, 0);

  /** Fires the soonest poll timer and waits until the upstream answered it and the loop settled. */
  async function tick() {
    const before = allGets();
    expect(scheduler.runNext()).toBe(true);
    await eventually(() => expect(allGets()).toBe(before + 1));
    await eventually(() => expect(shared.stack.gateway.poller.stats().inflight).toBe(0));
    await eventually(() => expect(scheduler.pending().length).toBe(shared.stack.gateway.poller.stats().loops));
  }

  it('gives each first state, reports a missing id once, delivers each change with its task, one terminal each, then completes; shares the loops of taskUpdated', async () => {
    const submittedAt = clock.now();
    const processing = await submit();
    const cancelled = await submit();
    const missing = 'task-does-not-exist';
    const socket = client();
    const many = watchMany(socket, [processing, cancelled, missing, processing]);
    await eventually(() => expect(many.events).toHaveLength(3));
    expect(many.of(processing)).toEqual(['QueuedTask:QUEUED:0']);
    expect(many.of(cancelled)).toEqual(['QueuedTask:QUEUED:0']);
    expect(many.events.find((event) => event.id === missing)).toEqual({
      __typename: 'TaskNotFoundError',
      id: missing,
      message: `Task "${missing}" was not found.`,
    });
    expect(many.completed).toBe(false);
    // The same task watched on its own: the same loop, its fresh state, no extra GET.
    const one: Watch = watch(socket, processing, WATCH_ONE);
    await eventually(() => expect(one.results).toHaveLength(1));
    expect(shared.stack.gateway.poller.stats()).toMatchObject({ loops: 2, subscribers: 3 });
    expect([gets(processing), gets(cancelled), gets(missing)]).toEqual([1, 1, 1]);

    const cancel = await shared.stack.gql(`mutation($id: ID!) { cancelTask(id: $id) { __typename } }`, { id: cancelled }, KEY);
    expect(cancel.data.cancelTask.__typename).toBe('CancelledTask');
    while (scheduler.pending().length > 0) await tick();
    await eventually(() => expect(many.completed && one.completed).toBe(true));

    expect(many.of(cancelled)).toEqual(['QueuedTask:QUEUED:0', 'CancelledTask:CANCELLED:0']);
    const life = [
      'QueuedTask:QUEUED:0',
      'ProcessingTask:PROCESSING:20',
      'ProcessingTask:PROCESSING:40',
      'ProcessingTask:PROCESSING:60',
      'ProcessingTask:PROCESSING:80',
      'CompletedTask:COMPLETED:100',
    ];
    expect(many.of(processing)).toEqual(life);
    expect(many.events.filter((event) => event.id === missing)).toHaveLength(1);
    expect(one.states()).toEqual(life);
    // Read once per interval for both watchers: at 0 s, 2 s (no change), 5, 7, 9, 11 and 13 s.
    expect(gets(processing)).toBe(7);
    // The estimate: null at the first processing reading (20 % at 5 s), then 10 points a second from 40 % at 7 s: 13 s.
    const estimates = many.events.filter((event) => event.id === processing && event.status === 'PROCESSING');
    expect(estimates[0].estimatedCompletionAt).toBeNull();
    expect(estimates[1].estimatedCompletionAt).toBe(new Date(submittedAt + 13_000).toISOString());
    expect(one.results.at(-2)?.data.taskUpdated.estimatedCompletionAt).toBe(new Date(submittedAt + 13_000).toISOString());
    expect(many.errors).toEqual([]);
  });

  it("reports another key's task as not found", async () => {
    const theirs = await submit(OTHER);
    const mine = await submit();
    const many = watchMany(client(), [theirs, mine]);
    await eventually(() => expect(many.events).toHaveLength(2));
    expect(many.of(theirs)).toEqual(['TaskNotFoundError::']);
    expect(many.of(mine)).toEqual(['QueuedTask:QUEUED:0']);
    many.unsubscribe();
  });

  it('stops every loop when the client leaves', async () => {
    const ids = [await submit(), await submit()];
    const many = watchMany(client(), ids);
    await eventually(() => expect(many.events).toHaveLength(2));
    expect(shared.stack.gateway.poller.stats().loops).toBe(2);
    many.unsubscribe();
    await eventually(() => expect(shared.stack.gateway.poller.stats().loops).toBe(0));
  });

  it('completes at once when every id is missing, and refuses more than 100 ids or a malformed id before any request', async () => {
    const many = watchMany(client(), ['task-gone-1', 'task-gone-2']);
    await eventually(() => expect(many.completed).toBe(true));
    expect(many.events.map((event) => event.__typename)).toEqual(['TaskNotFoundError', 'TaskNotFoundError']);

    const before = allGets();
    const tooMany = watchMany(
      client(),
      Array.from({ length: 101 }, (_, i) => `task-${i}`),
    );
    await eventually(() => expect(tooMany.errors).toHaveLength(1));
    expect(JSON.stringify(tooMany.errors)).toContain('BAD_USER_INPUT');
    expect(JSON.stringify(tooMany.errors)).toContain('at most 100');
    const malformed = watchMany(client(), ['task-ok', '../admin']);
    await eventually(() => expect(malformed.errors).toHaveLength(1));
    expect(JSON.stringify(malformed.errors)).toContain('BAD_USER_INPUT');
    expect(allGets()).toBe(before);
  });
});

describe('tasksUpdated and the per-connection subscription limit', () => {
  let stack: Stack;
  const clients: Client[] = [];
  beforeAll(async () => {
    stack = await startStack({ env: { MAX_SUBSCRIPTIONS_PER_CONNECTION: '5' } });
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await stack.stop();
  });
  const client = () => {
    const created = connectWs(stack.gatewayUrl, KEY);
    clients.push(created);
    return created;
  };
  const submit = async (): Promise<string> => (await stack.gql(SUBMIT, {}, KEY)).data.submitTask.id;

  it('counts tasksUpdated by its number of distinct ids', async () => {
    const ids = await Promise.all(Array.from({ length: 6 }, submit));
    const socket = client();
    const four = watchMany(socket, [...ids.slice(0, 4), ids[0]!]);
    await eventually(() => expect(four.events).toHaveLength(4));
    const fifth = watch(socket, ids[4]!, WATCH_ONE);
    await eventually(() => expect(fifth.results).toHaveLength(1));
    expect(fifth.results[0]?.errors).toBeUndefined();
    const sixth = watch(socket, ids[5]!, WATCH_ONE);
    await eventually(() => expect(sixth.error ?? sixth.results[0]).toBeDefined());
    expect(JSON.stringify(sixth.error ?? sixth.results)).toContain('TOO_MANY_SUBSCRIPTIONS');
    // Leaving frees its share: one id's worth fits again.
    four.unsubscribe();
    const again = watch(socket, ids[5]!, WATCH_ONE);
    await eventually(() => expect(again.results).toHaveLength(1));
    expect(again.results[0]?.errors).toBeUndefined();

    const tooMany = watchMany(client(), ids);
    await eventually(() => expect(tooMany.errors).toHaveLength(1));
    expect(JSON.stringify(tooMany.errors)).toContain('TOO_MANY_SUBSCRIPTIONS');
  });

  it('counts the ids however the operation hides them: fragments, inline fragments, variable defaults', async () => {
    const ids = await Promise.all(Array.from({ length: 6 }, submit));
    const list = JSON.stringify(ids);
    const hidden = [
      `subscription { ... on Subscription { tasksUpdated(ids: ${list}) { __typename } } }`,
      `subscription { ...Watch } fragment Watch on Subscription { tasksUpdated(ids: ${list}) { __typename } }`,
      `subscription($ids: [ID!]! = ${list}) { tasksUpdated(ids: $ids) { __typename } }`,
    ];
    for (const query of hidden) {
      const errors: unknown[] = [];
      let settled = false;
      client().subscribe(
        { query },
        {
          next: (result) => {
            if (result.errors) errors.push(result.errors);
            settled = true;
          },
          error: (error) => {
            errors.push(error);
            settled = true;
          },
          complete: () => undefined,
        },
      );
      await eventually(() => expect(settled).toBe(true));
      expect(JSON.stringify(errors)).toContain('TOO_MANY_SUBSCRIPTIONS');
    }
  });
});
