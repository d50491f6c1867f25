import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createManualClock } from '../helpers/clock.ts';
import { type Stack, startStack, TASK_FIELDS } from '../helpers/stack.ts';

const KEY = 'sk-mutations';
const SUBMIT = `mutation($input: SubmitTaskInput!) { submitTask(input: $input) { ${TASK_FIELDS} } }`;
const CANCEL = `mutation($id: ID!) { cancelTask(id: $id) {
  __typename
  ... on CancelledTask { id status completedAt cost }
  ... on TaskNotFoundError { id message }
  ... on TaskNotCancellableError { message task { __typename ... on BaseTask { id status progress } } }
} }`;

describe('submitTask and cancelTask', () => {
  const clock = createManualClock();
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ emulator: { now: clock.now, queuedMs: 3_000, processingMs: 10_000 }, now: clock.now });
  });
  afterAll(() => stack.stop());

  it('returns the original task for a repeated idempotency key, and a new one without it', async () => {
    const input = { model: 'gpt-image-2', prompt: 'a boat', idempotencyKey: 'order-42' };
    const first = await stack.gql(SUBMIT, { input }, KEY);
    const again = await stack.gql(SUBMIT, { input }, KEY);
    const fresh = await stack.gql(SUBMIT, { input: { ...input, idempotencyKey: undefined } }, KEY);
    expect(first.data.submitTask.id).toMatch(/^task-/);
    expect(again.data.submitTask.id).toBe(first.data.submitTask.id);
    expect(fresh.data.submitTask.id).not.toBe(first.data.submitTask.id);
    // Idempotency is per key: another key with the same idempotency key gets its own task.
    const other = await stack.gql(SUBMIT, { input }, 'sk-someone-else');
    expect(other.data.submitTask.id).not.toBe(first.data.submitTask.id);
  });

  it('passes params through and reports the upstream refusal of extra as BAD_USER_INPUT', async () => {
    const { errors } = await stack.gql(SUBMIT, { input: { model: 'gpt-image-2', params: { extra: { x: 1 } } } }, KEY);
    expect(errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', upstreamCode: 'capability_violation' });
    const bad = await stack.gql(SUBMIT, { input: { model: 'gpt-image-2', params: { image_urls: ['file:///etc/passwd'] } } }, KEY);
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const ok = await stack.gql(
      SUBMIT,
      { input: { model: 'gpt-image-2', params: { image_urls: ['https://example.com/a.png'], n: 2 } } },
      KEY,
    );
    expect(ok.data.submitTask.__typename).toBe('QueuedTask');
  });

  it('refuses bad input before any upstream request, with a clear message', async () => {
    stack.emulator!.resetStats();
    const cases = [
      [{ model: 'm', waitSeconds: 61 }, 'waitSeconds must be from 0 to 60'],
      [{ model: 'm', waitSeconds: -1 }, 'waitSeconds must be from 0 to 60'],
      [{ model: '' }, 'model must be'],
      [{ model: 'm', params: { model: 'other' } }, 'params must not set model'],
      [{ model: 'm', idempotencyKey: 'has space' }, 'idempotencyKey'],
    ] as const;
    for (const [input, message] of cases) {
      const { errors } = await stack.gql(SUBMIT, { input }, KEY);
      expect(errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(errors?.[0]?.message).toContain(message);
    }
    const notObject = await stack.gql(SUBMIT, { input: { model: 'm', params: [1, 2] } }, KEY);
    expect(notObject.errors?.[0]?.message).toContain('JSONObject');
    expect(stack.emulator!.stats.submits).toBe(0);
  });

  it('cancels a queued task', async () => {
    const { id } = (await stack.gql(SUBMIT, { input: { model: 'gpt-image-2' } }, KEY)).data.submitTask;
    const { data } = await stack.gql(CANCEL, { id }, KEY);
    expect(data.cancelTask).toMatchObject({ __typename: 'CancelledTask', id, status: 'CANCELLED', cost: 0 });
  });

  it('answers TaskNotCancellableError with the current state once the task is processing', async () => {
    const { id } = (await stack.gql(SUBMIT, { input: { model: 'gpt-image-2' } }, KEY)).data.submitTask;
    clock.advance(4_000);
    const { data, errors } = await stack.gql(CANCEL, { id }, KEY);
    expect(errors).toBeUndefined();
    expect(data.cancelTask.__typename).toBe('TaskNotCancellableError');
    expect(data.cancelTask.task).toMatchObject({ __typename: 'ProcessingTask', id, status: 'PROCESSING', progress: 10 });
    expect(data.cancelTask.message).toContain('no longer queued');
  });

  it("answers TaskNotFoundError for a missing task and for another key's", async () => {
    const { id } = (await stack.gql(SUBMIT, { input: { model: 'gpt-image-2' } }, KEY)).data.submitTask;
    for (const [taskId, key] of [
      ['task-nope', KEY],
      [id, 'sk-intruder'],
    ]) {
      const { data } = await stack.gql(CANCEL, { id: taskId }, key);
      expect(data.cancelTask).toMatchObject({ __typename: 'TaskNotFoundError', id: taskId });
    }
    const stillQueued = await stack.gql(`query($id: ID!) { task(id: $id) { __typename } }`, { id }, KEY);
    expect(stillQueued.data.task.__typename).toBe('QueuedTask');
  });
});

describe('submitTask with waitSeconds', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ emulator: { queuedMs: 50, processingMs: 200 } });
  });
  afterAll(() => stack.stop());

  it('answers the terminal task when it ends within the wait', async () => {
    const { data, errors } = await stack.gql(SUBMIT, { input: { model: 'gpt-image-2', waitSeconds: 10 } }, KEY);
    expect(errors).toBeUndefined();
    expect(data.submitTask).toMatchObject({ __typename: 'CompletedTask', status: 'COMPLETED' });
  });
});
