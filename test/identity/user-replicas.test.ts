import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Emulator } from '../../src/emulator/emulator.ts';
import { startIdentityProvider, type TestIdentityProvider } from '../helpers/identity-provider.ts';
import { firstOutcome, TRANSPORTS } from '../helpers/jwt-transports.ts';
import { type Replica, startReplicas } from '../helpers/replicas.ts';
import { startEmulator } from '../helpers/stack.ts';

const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "fox" }) {
  __typename ... on BaseTask { id } ... on SubmitLimitError { limit } } }`;
const TASK = `query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status } } }`;
const TASKS = `query($id: ID!) { tasks(ids: [$id]) { __typename ... on BaseTask { id } } }`;
const RECENT = `query { recentTasks { edges { node { ... on BaseTask { id } } } } }`;
const CANCEL = `mutation($id: ID!) { cancelTask(id: $id) { __typename } }`;
const WATCH = `subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status } } }`;
const WATCH_MANY = `subscription($id: ID!) { tasksUpdated(ids: [$id]) { __typename ... on BaseTask { id status } } }`;

/** An emulator, an identity provider and two jwt-mode replicas on Redis with `limits`, started before and stopped after the tests. */
function twoReplicas(limits: Record<string, string>) {
  const fleet = {} as { emulator: Emulator; idp: TestIdentityProvider; replicas: Replica[] };
  beforeAll(async () => {
    fleet.emulator = await startEmulator({ queuedMs: 3_600_000 });
    fleet.idp = await startIdentityProvider();
    fleet.replicas = await startReplicas(2, {
      redisUrl: inject('redisUrl'),
      upstreamUrl: fleet.emulator.url,
      env: { ...fleet.idp.env, UPSTREAM_API_KEY: 'sk-server', ...limits },
    });
  }, 60_000);
  afterAll(async () => {
    await Promise.all((fleet.replicas ?? []).map((replica) => replica.process.stop()));
    await fleet.idp?.stop();
    await fleet.emulator?.stop();
  });
  return fleet;
}

describe('two replicas on Redis, each user seeing only their own tasks and limited fleet-wide (AUTH_MODE=jwt)', () => {
  const fleet = twoReplicas({ USER_MAX_ACTIVE_TASKS: '3' });
  const run = `r${Math.random().toString(36).slice(2)}`;
  const bearer = async (user: string) => `Bearer ${await fleet.idp.sign({ sub: `${run}-${user}` })}`;

  it('answers a task submitted on one replica only to its owner, on the other replica, over every transport', async () => {
    const [a, b] = fleet.replicas;
    const [alice, bob] = [await bearer('alice'), await bearer('bob')];
    const submitted = await firstOutcome(a!.url, 'http', SUBMIT, {}, alice);
    const id = submitted.result!.data.submitTask.id as string;
    const requests = fleet.emulator.stats.requests;
    const asBob = async (transport: (typeof TRANSPORTS)[number], query: string) =>
      (await firstOutcome(b!.url, transport, query, { id }, bob)).result;
    expect(await asBob('http', TASK)).toEqual({ data: { task: null } });
    expect(await asBob('http', TASKS)).toEqual({ data: { tasks: [null] } });
    expect(await asBob('http', CANCEL)).toEqual({ data: { cancelTask: { __typename: 'TaskNotFoundError' } } });
    expect(await asBob('http', RECENT)).toEqual({ data: { recentTasks: { edges: [] } } });
    for (const transport of TRANSPORTS.filter((name) => name !== 'http')) {
      expect(await asBob(transport, WATCH)).toMatchObject({ errors: [{ extensions: { code: 'NOT_FOUND' } }] });
      expect(await asBob(transport, WATCH_MANY)).toEqual({ data: { tasksUpdated: { __typename: 'TaskNotFoundError' } } });
    }
    expect(fleet.emulator.stats.requests).toBe(requests);
    const asAlice = async (transport: (typeof TRANSPORTS)[number], query: string) =>
      (await firstOutcome(b!.url, transport, query, { id }, alice)).result;
    expect(await asAlice('http', TASK)).toEqual({ data: { task: { __typename: 'QueuedTask', id, status: 'QUEUED' } } });
    expect(await asAlice('http', RECENT)).toEqual({ data: { recentTasks: { edges: [{ node: { id } }] } } });
    for (const transport of TRANSPORTS.filter((name) => name !== 'http')) {
      expect(await asAlice(transport, WATCH)).toEqual({ data: { taskUpdated: { __typename: 'QueuedTask', id, status: 'QUEUED' } } });
    }
  });

  it('accepts exactly USER_MAX_ACTIVE_TASKS of 20 concurrent submits split over two replicas; the rest never reach the upstream', async () => {
    const carol = await bearer('carol');
    const submits = fleet.emulator.stats.submits;
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => firstOutcome(fleet.replicas[i % 2]!.url, 'http', SUBMIT, {}, carol)),
    );
    const kinds = answers.map((answer) => answer.result!.data.submitTask.__typename);
    expect(kinds.filter((kind) => kind === 'QueuedTask')).toHaveLength(3);
    expect(kinds.filter((kind) => kind === 'SubmitLimitError')).toHaveLength(17);
    expect(fleet.emulator.stats.submits - submits).toBe(3);
  });
});

describe('two replicas on Redis racing on USER_SUBMITS_PER_MINUTE (AUTH_MODE=jwt)', () => {
  const fleet = twoReplicas({ USER_SUBMITS_PER_MINUTE: '4' });
  const run = `m${Math.random().toString(36).slice(2)}`;

  it('accepts exactly USER_SUBMITS_PER_MINUTE of 20 concurrent submits split over two replicas; the rest never reach the upstream', async () => {
    const frank = `Bearer ${await fleet.idp.sign({ sub: `${run}-frank` })}`;
    const submits = fleet.emulator.stats.submits;
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => firstOutcome(fleet.replicas[i % 2]!.url, 'http', SUBMIT, {}, frank)),
    );
    const outcomes = answers.map((answer) => answer.result!.data.submitTask);
    expect(outcomes.filter((outcome) => outcome.__typename === 'QueuedTask')).toHaveLength(4);
    expect(outcomes.filter((outcome) => outcome.limit === 'SUBMITS_PER_MINUTE')).toHaveLength(16);
    expect(fleet.emulator.stats.submits - submits).toBe(4);
  });
});
