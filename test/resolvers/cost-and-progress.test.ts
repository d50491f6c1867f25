import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/clock.ts';
import { useManualStack } from '../helpers/manual-stack.ts';
import { type ScriptedUpstream, startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { json, startStandIn } from '../helpers/stand-in.ts';
import { watch } from '../helpers/ws-client.ts';

const KEY = 'sk-cost';
const SUBMIT = `mutation($input: SubmitTaskInput!) {
  submitTask(input: $input) { __typename ... on BaseTask { id status progress preConsumedCost } }
}`;
const CANCEL = `mutation($id: ID!) {
  cancelTask(id: $id) { __typename ... on CancelledTask { id status cost refundedCost preConsumedCost } }
}`;

describe.each(['older', 'newer'] as const)('cost and queued progress, %s wire format', (wireFormat) => {
  const shared = useManualStack({ wireFormat });
  const { clock, scheduler } = shared;

  const submit = async (model = 'gpt-image-2') => {
    const { data, errors } = await shared.stack.gql(SUBMIT, { input: { model, prompt: 'a fox' } }, KEY);
    expect(errors).toBeUndefined();
    return data.submitTask;
  };
  const gets = (id: string) => shared.stack.emulator!.stats.gets.get(id) ?? 0;

  it('returns the pre-consumed cost the submit answer announces', async () => {
    expect((await submit('gpt-image-2')).preConsumedCost).toBe(300);
    expect((await submit('veo3.1-fast')).preConsumedCost).toBe(5500);
  });

  it('reports the refunded cost of a cancel, and cost 0', async () => {
    const { id } = await submit('veo3.1-fast');
    const { data } = await shared.stack.gql(CANCEL, { id }, KEY);
    expect(data.cancelTask).toMatchObject({ __typename: 'CancelledTask', id, status: 'CANCELLED', cost: 0, refundedCost: 5500 });
  });

  it('shows a queued task with progress 0, and publishes no change when the wire goes from "" to "0%"', async () => {
    const { id, progress } = await submit();
    expect(progress).toBe(0);
    const client = shared.connect(KEY);
    const watcher = watch(client, id);
    await eventually(() => expect(watcher.states()).toEqual(['QueuedTask:QUEUED:0']));
    // Past the newer format's first second ("" then "0%"), still queued: one more GET, no event.
    const before = gets(id);
    expect(scheduler.runNext()).toBe(true);
    await eventually(() => expect(gets(id)).toBe(before + 1));
    await eventually(() => expect(shared.stack.gateway.poller.stats().inflight).toBe(0));
    clock.advance(2_000); // now 4 s old: processing
    expect(scheduler.runNext()).toBe(true);
    await eventually(() => expect(watcher.states().at(-1)).toMatch(/^ProcessingTask:PROCESSING:/));
    expect(watcher.states().filter((state) => state.startsWith('QueuedTask'))).toEqual(['QueuedTask:QUEUED:0']);
  });
});

describe('cost when the upstream gives none', () => {
  let upstream: ScriptedUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await startScriptedUpstream('task-nocost');
    stack = await startStack({ upstreamUrl: upstream.url });
  });
  afterAll(async () => {
    await stack.stop();
    await upstream.stop();
  });

  it('answers preConsumedCost null when the submit answer has no pre_consumed_cost', async () => {
    const { data } = await stack.gql(SUBMIT, { input: { model: 'm' } }, KEY);
    expect(data.submitTask).toMatchObject({ id: 'task-nocost', status: 'QUEUED', progress: 0, preConsumedCost: null });
  });
});

describe('cost when the gateway finishes a wait the upstream cut short', () => {
  it('keeps the announced cost on the task it waited for (a GET does not repeat it)', async () => {
    const task = { task_id: 'task-waited', model: 'm', action: 'generate', created_at: 1_720_000_000 };
    // An upstream that ignores `Prefer: wait`: the gateway waits the rest on its own poller.
    const upstream = await startStandIn((request, response) =>
      request.method === 'POST'
        ? json(response, 200, { ...task, status: 'queued', progress: '', pre_consumed_cost: 42 })
        : json(response, 200, { ...task, status: 'completed', progress: '100%', completed_at: 1_720_000_009, cost: 42, result: {} }),
    );
    const stack = await startStack({ upstreamUrl: upstream.url, env: { POLL_INTERVAL_MS: '20' } });
    const { data, errors } = await stack.gql(
      `mutation { submitTask(input: { model: "m", waitSeconds: 5 }) { __typename ... on BaseTask { id preConsumedCost } ... on TerminalTask { cost } } }`,
      {},
      KEY,
    );
    expect(errors).toBeUndefined();
    expect(data.submitTask).toEqual({ __typename: 'CompletedTask', id: 'task-waited', preConsumedCost: 42, cost: 42 });
    expect(upstream.requests.filter((request) => request.method === 'GET').length).toBeGreaterThanOrEqual(1);
  });
});
