import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../helpers/stack.ts';

const ALICE = 'sk-alice';
const BOB = 'sk-bob';
const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "p" }) { ... on BaseTask { id } } }`;
const TASK = `query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id } } }`;
const TASKS = `query($ids: [ID!]!) { tasks(ids: $ids) { __typename ... on BaseTask { id } } }`;

describe('task and tasks queries', () => {
  let stack: Stack;
  const aliceTasks: string[] = [];
  beforeAll(async () => {
    stack = await startStack();
    for (let i = 0; i < 3; i++) aliceTasks.push((await stack.gql(SUBMIT, {}, ALICE)).data.submitTask.id);
  });
  afterAll(() => stack.stop());

  it('answers null for a task that does not exist', async () => {
    const { data, errors } = await stack.gql(TASK, { id: 'task-missing' }, ALICE);
    expect(errors).toBeUndefined();
    expect(data.task).toBeNull();
  });

  it("answers null for another key's task, exactly as for a missing one", async () => {
    const own = await stack.gql(TASK, { id: aliceTasks[0] }, ALICE);
    expect(own.data.task.id).toBe(aliceTasks[0]);
    const other = await stack.gql(TASK, { id: aliceTasks[0] }, BOB);
    expect(other).toEqual({ data: { task: null } });
  });

  it('answers UNAUTHENTICATED for a key the upstream rejects, and for a malformed header', async () => {
    const rejected = await stack.gql(TASK, { id: aliceTasks[0] }, 'invalid-key');
    expect(rejected.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(rejected.data?.task).toBeNull();
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Basic abc' },
      body: JSON.stringify({ query: TASK, variables: { id: aliceTasks[0] } }),
    });
    const body = await response.json();
    expect(body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(body.errors[0].message).toContain('Bearer');
  });

  it('answers UNAUTHENTICATED when no key is sent and no UPSTREAM_API_KEY is set', async () => {
    const { errors } = await stack.gql(TASK, { id: aliceTasks[0] }, null);
    expect(errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(errors?.[0]?.message).toContain('No API key');
  });

  it('issues one upstream GET per distinct id and answers in request order', async () => {
    stack.emulator!.resetStats();
    const [a, b, c] = aliceTasks as [string, string, string];
    const ids = [c, a, 'task-missing', a, b, c, c];
    const { data, errors } = await stack.gql(TASKS, { ids }, ALICE);
    expect(errors).toBeUndefined();
    expect(data.tasks.map((task: { id: string } | null) => task?.id ?? null)).toEqual([c, a, null, a, b, c, c]);
    expect(Object.fromEntries(stack.emulator!.stats.gets)).toEqual({ [a]: 1, [b]: 1, [c]: 1, 'task-missing': 1 });
  });

  it('shares one GET between task and tasks fields of the same operation', async () => {
    stack.emulator!.resetStats();
    const [a] = aliceTasks as [string];
    const { data } = await stack.gql(
      `query($id: ID!) { one: task(id: $id) { __typename } two: task(id: $id) { __typename } all: tasks(ids: [$id]) { __typename } }`,
      { id: a },
      ALICE,
    );
    expect(data.one.__typename).toBe('QueuedTask');
    expect(stack.emulator!.stats.gets.get(a)).toBe(1);
  });

  it('refuses more than 100 ids, and any invalid id, before any upstream request', async () => {
    stack.emulator!.resetStats();
    const many = await stack.gql(TASKS, { ids: Array.from({ length: 101 }, (_, i) => `task-${i}`) }, ALICE);
    expect(many.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(many.errors?.[0]?.message).toContain('at most 100');
    const bad = await stack.gql(TASKS, { ids: [aliceTasks[0], '../../admin'] }, ALICE);
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    for (const id of ['../x', 'a/b', 'a%2Fb', 'a?b=1', 'x'.repeat(500), '\u0000', 'ñ']) {
      const single = await stack.gql(TASK, { id }, ALICE);
      expect(single.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    expect(stack.emulator!.stats.gets.size).toBe(0);
  });
});
