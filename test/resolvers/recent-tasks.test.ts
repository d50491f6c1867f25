import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createEmulator, type Emulator } from '../../src/emulator/emulator.ts';
import { createManualClock } from '../helpers/clock.ts';
import { freePort, type GraphQLResponse, type Stack, startStack } from '../helpers/stack.ts';

const SUBMIT = `mutation($model: String!) { submitTask(input: { model: $model, prompt: "a fox" }) { ... on BaseTask { id } } }`;
const RECENT = `query($first: Int, $after: String) {
  recentTasks(first: $first, after: $after) {
    edges { cursor node { __typename ... on BaseTask { id status preConsumedCost } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

/** Reads every page of `recentTasks` for `key`, `first` at a time; returns the ids in order and the pages' sizes. */
async function readAll(stack: Stack, key: string, first: number) {
  const ids: string[] = [];
  const sizes: number[] = [];
  let after: string | null = null;
  for (;;) {
    const { data, errors }: GraphQLResponse = await stack.gql(RECENT, { first, after }, key);
    expect(errors).toBeUndefined();
    const { edges, pageInfo }: { edges: any[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } = data.recentTasks;
    ids.push(...edges.map((edge: any) => edge.node.id));
    sizes.push(edges.length);
    if (!pageInfo.hasNextPage) return { ids, sizes, last: data.recentTasks };
    after = pageInfo.endCursor;
  }
}

describe('recentTasks in memory', () => {
  const clock = createManualClock();
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ emulator: { now: clock.now, queuedMs: 1_000, processingMs: 2_000 }, now: clock.now });
  });
  afterAll(() => stack.stop());

  const submit = async (key: string, model = 'gpt-image-2') => {
    clock.advance(1);
    return (await stack.gql(SUBMIT, { model }, key)).data.submitTask.id as string;
  };

  it('pages the tasks a key submitted, newest first, each as it is now, and only its own', async () => {
    const alice = `sk-recent-alice-${randomUUID()}`;
    const bob = `sk-recent-bob-${randomUUID()}`;
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) {
      mine.push(await submit(alice, i === 0 ? 'veo3.1-fast' : 'gpt-image-2'));
      await submit(bob);
    }
    clock.advance(5_000); // every task has completed by now
    const { ids, sizes, last } = await readAll(stack, alice, 2);
    expect(ids).toEqual([...mine].reverse());
    expect(sizes).toEqual([2, 2, 1]);
    expect(last.pageInfo.hasNextPage).toBe(false);
    const { data } = await stack.gql(RECENT, { first: 5 }, alice);
    expect(data.recentTasks.edges.map((edge: any) => edge.node.__typename)).toEqual(Array(5).fill('CompletedTask'));
    // The cost submit announced, kept with the record: the upstream's GET does not repeat it.
    expect(data.recentTasks.edges.at(-1).node.preConsumedCost).toBe(5500);
    expect(data.recentTasks.edges[0].node.preConsumedCost).toBe(300);
    const theirs = await readAll(stack, bob, 20);
    expect(theirs.ids).toHaveLength(5);
    expect(theirs.ids.some((id) => mine.includes(id))).toBe(false);
  });

  it('reads finished tasks from the terminal cache: a second page read costs no upstream call', async () => {
    const key = `sk-recent-cache-${randomUUID()}`;
    const ids = [await submit(key), await submit(key)];
    clock.advance(5_000);
    await stack.gql(RECENT, {}, key);
    const gets = () => ids.reduce((sum, id) => sum + (stack.emulator!.stats.gets.get(id) ?? 0), 0);
    const before = gets();
    const { data } = await stack.gql(RECENT, {}, key);
    expect(data.recentTasks.edges).toHaveLength(2);
    expect(gets()).toBe(before);
  });

  it('answers an empty page to a key that submitted nothing, and refuses a bad first or cursor', async () => {
    const { data } = await stack.gql(RECENT, {}, `sk-recent-none-${randomUUID()}`);
    expect(data.recentTasks).toEqual({ edges: [], pageInfo: { hasNextPage: false, endCursor: null } });
    for (const variables of [{ first: 0 }, { first: 101 }, { after: 'not-a-cursor' }]) {
      const { errors } = await stack.gql(RECENT, variables, 'sk-recent-bad');
      expect(errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
  });
});

describe('recentTasks through Redis, shared by two replicas', () => {
  let emulator: Emulator;
  let replicas: Stack[];
  beforeAll(async () => {
    emulator = createEmulator({ queuedMs: 60_000 });
    const upstreamUrl = await emulator.start();
    replicas = await Promise.all([0, 1].map(() => startStack({ upstreamUrl, env: { REDIS_URL: inject('redisUrl') } })));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.stop()));
    await emulator.stop();
  });

  it('shows on one replica what was submitted through the other, newest first, per key', async () => {
    const alice = `sk-recent-redis-${randomUUID()}`;
    const bob = `sk-recent-redis-${randomUUID()}`;
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) {
      mine.push((await replicas[i % 2]!.gql(SUBMIT, { model: 'gpt-image-2' }, alice)).data.submitTask.id);
      await replicas[0]!.gql(SUBMIT, { model: 'gpt-image-2' }, bob);
      await new Promise((resolve) => setTimeout(resolve, 2)); // distinct milliseconds
    }
    for (const replica of replicas) {
      const { ids, sizes } = await readAll(replica, alice, 2);
      expect(ids).toEqual([...mine].reverse());
      expect(sizes).toEqual([2, 2, 1]);
    }
    const { data } = await replicas[1]!.gql(RECENT, { first: 1 }, alice);
    expect(data.recentTasks.edges[0].node).toMatchObject({ __typename: 'QueuedTask', id: mine[4], preConsumedCost: 300 });
    expect((await readAll(replicas[1]!, bob, 20)).ids.some((id) => mine.includes(id))).toBe(false);
  });
});

describe('recentTasks when Redis is unreachable', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ emulator: { queuedMs: 60_000 }, env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}` } });
  });
  afterAll(() => stack.stop());

  it('still submits, and answers SERVICE_UNAVAILABLE instead of an empty page', async () => {
    const key = `sk-recent-down-${randomUUID()}`;
    const submitted = await stack.gql(SUBMIT, { model: 'gpt-image-2' }, key);
    expect(submitted.errors).toBeUndefined();
    expect(submitted.data.submitTask.id).toMatch(/^task-/);
    const { data, errors } = await stack.gql(RECENT, {}, key);
    expect(data).toBeNull();
    expect(errors?.[0]).toMatchObject({ extensions: { code: 'SERVICE_UNAVAILABLE' } });
    expect(errors?.[0]?.message).not.toContain('127.0.0.1');
  });
});
