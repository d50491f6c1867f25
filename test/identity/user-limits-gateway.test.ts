import { describe, expect, it } from 'vitest';
import { createManualClock, createManualScheduler } from '../helpers/clock.ts';
import { startIdentityProvider } from '../helpers/identity-provider.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "fox" }) {
  __typename ... on BaseTask { id } ... on SubmitLimitError { limit message retryAfterMs resetsAt } } }`;
const VIEWER = `query { viewer { id limits { limit max used resetsAt } } }`;

/** A gateway in jwt mode with `limits` (USER_* variables), on a manual clock shared with its emulator and identity provider. */
async function start(limits: Record<string, string>) {
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  const idp = await startIdentityProvider({ now: clock.now });
  const stack = await startStack({
    env: { ...idp.env, UPSTREAM_API_KEY: 'sk-server', ...limits },
    emulator: { now: clock.now, queuedMs: 1_000, processingMs: 1_000 },
    now: clock.now,
    scheduler,
    random: () => 0.5,
  });
  const as = async (user: string) => {
    const token = await idp.sign({ sub: user, exp: Math.floor(clock.now() / 1000) + 86_400 * 3 });
    return (query: string, variables?: Record<string, unknown>) => stack.gql(query, variables, token);
  };
  return { clock, stack, as };
}

/** Emulator requests made by `work`, by kind. */
async function upstreamDuring(stack: Stack, work: () => Promise<unknown>) {
  const { stats } = stack.emulator!;
  const [submits, requests] = [stats.submits, stats.requests];
  await work();
  return { submits: stats.submits - submits, requests: stats.requests - requests };
}

describe('per-user limits (AUTH_MODE=jwt, one process)', () => {
  it('refuses past USER_MAX_ACTIVE_TASKS before the upstream, per user, and reconciles tasks that ended unwatched', async () => {
    const { clock, stack, as } = await start({ USER_MAX_ACTIVE_TASKS: '2' });
    const alice = await as('alice');
    const bob = await as('bob');
    for (let i = 0; i < 2; i++) expect((await alice(SUBMIT)).data.submitTask.__typename).toBe('QueuedTask');
    let refused: any;
    // Both still queued: re-read (2 GETs, within the limit's number) and refused, nothing submitted.
    expect(await upstreamDuring(stack, async () => (refused = await alice(SUBMIT)))).toEqual({ submits: 0, requests: 2 });
    expect(refused.data.submitTask).toEqual({
      __typename: 'SubmitLimitError',
      limit: 'ACTIVE_TASKS',
      message: expect.stringContaining('USER_MAX_ACTIVE_TASKS'),
      retryAfterMs: null,
      resetsAt: null,
    });
    expect((await bob(SUBMIT)).data.submitTask.__typename).toBe('QueuedTask');
    expect((await alice(VIEWER)).data.viewer).toEqual({
      id: 'alice',
      limits: [{ limit: 'ACTIVE_TASKS', max: 2, used: 2, resetsAt: null }],
    });
    // Both end upstream while nobody watches them: the count must not go stale.
    clock.advance(5_000);
    let accepted: any;
    const spent = await upstreamDuring(stack, async () => (accepted = await alice(SUBMIT)));
    expect(accepted.data.submitTask.__typename).toBe('QueuedTask');
    expect(spent).toEqual({ submits: 1, requests: 3 });
    expect((await alice(VIEWER)).data.viewer.limits[0].used).toBe(1);
  });

  it('refuses past USER_SUBMITS_PER_MINUTE before the upstream, saying when to try again', async () => {
    const { clock, stack, as } = await start({ USER_SUBMITS_PER_MINUTE: '2' });
    const alice = await as('alice');
    const start0 = clock.now();
    expect((await alice(SUBMIT)).data.submitTask.__typename).toBe('QueuedTask');
    clock.advance(20_000);
    expect((await alice(SUBMIT)).data.submitTask.__typename).toBe('QueuedTask');
    clock.advance(10_000);
    let refused: any;
    expect(await upstreamDuring(stack, async () => (refused = await alice(SUBMIT)))).toEqual({ submits: 0, requests: 0 });
    expect(refused.data.submitTask).toMatchObject({
      limit: 'SUBMITS_PER_MINUTE',
      retryAfterMs: 30_000,
      resetsAt: new Date(start0 + 60_000).toISOString(),
      message: expect.stringContaining('try again in 30 s'),
    });
    expect((await alice(VIEWER)).data.viewer.limits).toEqual([
      { limit: 'SUBMITS_PER_MINUTE', max: 2, used: 2, resetsAt: new Date(start0 + 60_000).toISOString() },
    ]);
    clock.advance(30_000);
    expect((await alice(SUBMIT)).data.submitTask.__typename).toBe('QueuedTask');
  });

  it('refuses at USER_DAILY_SPEND before the upstream until the next UTC day; a cancelled task gives its cost back', async () => {
    // Each image task announces 300: the third takes alice from 600 to 900, past 800 (the last may go over).
    const { clock, stack, as } = await start({ USER_DAILY_SPEND: '800' });
    const alice = await as('alice');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { data } = await alice(SUBMIT);
      expect(data.submitTask.__typename).toBe('QueuedTask');
      ids.push(data.submitTask.id);
    }
    const midnight = new Date(Math.ceil(clock.now() / 86_400_000) * 86_400_000).toISOString();
    expect((await alice(VIEWER)).data.viewer.limits).toEqual([{ limit: 'DAILY_SPEND', max: 800, used: 900, resetsAt: midnight }]);
    let refused: any;
    expect((await upstreamDuring(stack, async () => (refused = await alice(SUBMIT)))).submits).toBe(0);
    expect(refused.data.submitTask).toMatchObject({ limit: 'DAILY_SPEND', resetsAt: midnight });
    const cancelled = await alice(`mutation($id: ID!) { cancelTask(id: $id) { __typename } }`, { id: ids[0] });
    expect(cancelled.data.cancelTask.__typename).toBe('CancelledTask');
    expect((await alice(VIEWER)).data.viewer.limits[0].used).toBe(600);
    expect((await alice(SUBMIT)).data.submitTask.__typename).toBe('QueuedTask');
    clock.advance(Date.parse(midnight) - clock.now());
    expect((await alice(VIEWER)).data.viewer.limits[0]).toMatchObject({ used: 0, resetsAt: null });
  });
});
