import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdentityProvider, type TestIdentityProvider } from '../helpers/identity-provider.ts';
import { firstOutcome, TRANSPORTS } from '../helpers/jwt-transports.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "fox" }) { __typename ... on BaseTask { id } } }`;
const TASK = `query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status } } }`;
const TASKS = `query($id: ID!) { tasks(ids: [$id]) { __typename ... on BaseTask { id } } }`;
const RECENT = `query { recentTasks { edges { node { __typename ... on BaseTask { id } } } } }`;
const CANCEL = `mutation($id: ID!) { cancelTask(id: $id) { __typename ... on TaskNotFoundError { id message } ... on CancelledTask { id } } }`;
const WATCH = `subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status } } }`;
const WATCH_MANY = `subscription($id: ID!) { tasksUpdated(ids: [$id]) { __typename ... on TaskNotFoundError { id message } ... on BaseTask { id status } } }`;
const NO_SUCH_TASK = 'task-00000000-0000-4000-8000-000000000000';

describe('two users on one server-held key (AUTH_MODE=jwt)', () => {
  let idp: TestIdentityProvider;
  let stack: Stack;
  let alice: string;
  let bob: string;
  let aliceTask: string;

  beforeAll(async () => {
    idp = await startIdentityProvider();
    stack = await startStack({ env: { ...idp.env, UPSTREAM_API_KEY: 'sk-server' }, emulator: { queuedMs: 3_600_000 } });
    alice = `Bearer ${await idp.sign({ sub: 'alice' })}`;
    bob = `Bearer ${await idp.sign({ sub: 'bob' })}`;
    const submitted = await firstOutcome(stack.gatewayUrl, 'http', SUBMIT, {}, alice);
    aliceTask = submitted.result!.data.submitTask.id;
  });
  afterAll(async () => {
    await stack?.stop();
    await idp?.stop();
  });

  /** Runs `query` as `who` over `transport`, and answers its first result with the task id replaced (to compare answers for two ids). */
  async function answer(transport: (typeof TRANSPORTS)[number], query: string, id: string, who: string) {
    const outcome = await firstOutcome(stack.gatewayUrl, transport, query, { id }, who);
    return JSON.parse(JSON.stringify(outcome.result).replaceAll(id, '<id>'));
  }

  /** The upstream requests `work` made. */
  async function upstreamRequests(work: () => Promise<unknown>) {
    const before = stack.emulator!.stats.requests;
    await work();
    return stack.emulator!.stats.requests - before;
  }

  it.each([
    ['task', TASK],
    ['tasks', TASKS],
    ['cancelTask', CANCEL],
  ])("answers another user's task exactly as one that does not exist, without an upstream request (%s over HTTP)", async (_name, query) => {
    let theirs: unknown;
    let missing: unknown;
    expect(
      await upstreamRequests(async () => {
        theirs = await answer('http', query, aliceTask, bob);
        missing = await answer('http', query, NO_SUCH_TASK, bob);
      }),
    ).toBe(0);
    expect(theirs).toEqual(missing);
    expect(JSON.stringify(theirs)).not.toContain('QUEUED');
  });

  it.each(TRANSPORTS.filter((transport) => transport !== 'http'))(
    "ends another user's taskUpdated and tasksUpdated exactly as a missing task's, without an upstream request (%s)",
    async (transport) => {
      const answers: unknown[] = [];
      expect(
        await upstreamRequests(async () => {
          for (const query of [WATCH, WATCH_MANY]) {
            answers.push(await answer(transport, query, aliceTask, bob), await answer(transport, query, NO_SUCH_TASK, bob));
          }
        }),
      ).toBe(0);
      expect(answers[0]).toEqual(answers[1]);
      expect(answers[0]).toMatchObject({ errors: [{ extensions: { code: 'NOT_FOUND' } }] });
      expect(answers[2]).toEqual(answers[3]);
      expect(answers[2]).toMatchObject({ data: { tasksUpdated: { __typename: 'TaskNotFoundError', id: '<id>' } } });
    },
  );

  it.each(TRANSPORTS)('lets the owner read and watch their own task (%s)', async (transport) => {
    const query = transport === 'http' ? TASK : WATCH;
    const result = await answer(transport, query, aliceTask, alice);
    expect(result.errors).toBeUndefined();
    expect(Object.values(result.data)[0]).toEqual({ __typename: 'QueuedTask', id: '<id>', status: 'QUEUED' });
  });

  it("lists each user's own submissions only in recentTasks", async () => {
    const bobs = await firstOutcome(stack.gatewayUrl, 'http', SUBMIT, {}, bob);
    const bobTask = bobs.result!.data.submitTask.id;
    const ids = async (who: string) =>
      (await firstOutcome(stack.gatewayUrl, 'http', RECENT, {}, who)).result!.data.recentTasks.edges.map((edge: any) => edge.node.id);
    expect(await ids(alice)).toEqual([aliceTask]);
    expect(await ids(bob)).toEqual([bobTask]);
  });

  it('lets the owner cancel their task; the other user cannot', async () => {
    const { result } = await firstOutcome(stack.gatewayUrl, 'http', SUBMIT, {}, alice);
    const id = result!.data.submitTask.id;
    expect((await answer('http', CANCEL, id, bob)).data.cancelTask.__typename).toBe('TaskNotFoundError');
    expect((await answer('http', TASK, id, alice)).data.task.status).toBe('QUEUED');
    expect((await answer('http', CANCEL, id, alice)).data.cancelTask).toEqual({ __typename: 'CancelledTask', id: '<id>' });
  });

  it('gives two users who choose the same idempotencyKey two tasks, and one user the same task twice', async () => {
    const SUBMIT_KEYED = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "fox", idempotencyKey: "order-42" }) { ... on BaseTask { id } } }`;
    const id = async (who: string) => (await firstOutcome(stack.gatewayUrl, 'http', SUBMIT_KEYED, {}, who)).result!.data.submitTask.id;
    const alices = await id(alice);
    const bobs = await id(bob);
    expect(bobs).not.toBe(alices);
    expect(await id(alice)).toBe(alices);
    expect((await answer('http', TASK, alices, bob)).data.task).toBeNull();
  });

  it('answers viewer with the signed-in user and, with no limit configured, no limits', async () => {
    const { result } = await firstOutcome(stack.gatewayUrl, 'http', 'query { viewer { id limits { limit } } }', {}, bob);
    expect(result).toEqual({ data: { viewer: { id: 'bob', limits: [] } } });
  });
});
