import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/clock.ts';
import { startIdentityProvider } from '../helpers/identity-provider.ts';
import { startStack } from '../helpers/stack.ts';
import { connectWs, watch } from '../helpers/ws-client.ts';

const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "fox" }) { ... on BaseTask { id } } }`;

describe('USER_MAX_WATCHED_TASKS (AUTH_MODE=jwt)', () => {
  it("bounds one user's watched tasks, not another's, and frees a place when a watch ends", async () => {
    const idp = await startIdentityProvider();
    const stack = await startStack({
      env: { ...idp.env, UPSTREAM_API_KEY: 'sk-server', USER_MAX_WATCHED_TASKS: '2' },
      emulator: { queuedMs: 3_600_000 },
    });
    const [alice, bob] = [await idp.sign({ sub: 'alice' }), await idp.sign({ sub: 'bob' })];
    const submit = async (token: string) => (await stack.gql(SUBMIT, {}, token)).data.submitTask.id as string;
    const aliceTasks = [await submit(alice), await submit(alice), await submit(alice)];
    const bobTask = await submit(bob);
    const aliceSocket = connectWs(stack.gatewayUrl, alice);
    const watches = aliceTasks.map((id) => watch(aliceSocket, id));
    await eventually(() =>
      expect(watches.map((one) => one.states()[0])).toEqual(['QueuedTask:QUEUED:0', 'QueuedTask:QUEUED:0', expect.anything()]),
    );
    expect(watches[2]!.states()).toEqual(['error:TOO_MANY_SUBSCRIPTIONS']);
    expect(watches[2]!.results[0]!.errors![0]!.message).toContain('USER_MAX_WATCHED_TASKS');
    // Another user is not held by alice's watches.
    const bobWatch = watch(connectWs(stack.gatewayUrl, bob), bobTask);
    await eventually(() => expect(bobWatch.states()).toEqual(['QueuedTask:QUEUED:0']));
    watches[0]!.unsubscribe();
    await eventually(async () => {
      const again = watch(aliceSocket, aliceTasks[2]!);
      await eventually(() => expect(again.states().length).toBe(1));
      expect(again.states()).toEqual(['QueuedTask:QUEUED:0']);
    });
  });
});
