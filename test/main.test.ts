import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Spawned, spawnEntry } from './helpers/spawn.ts';

describe('npm start with no UPSTREAM_URL', () => {
  let gateway: Spawned;
  let url: string;
  beforeAll(async () => {
    gateway = spawnEntry('src/main.ts', [], { PORT: '0', HOST: '127.0.0.1' });
    [, url] = (await gateway.waitFor(/GraphiQL at (http:\/\/\S+)\/graphql/)) as unknown as [string, string];
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  it('serves GraphiQL with the example operations preloaded', async () => {
    const response = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('task-gateway');
    for (const operation of ['mutation SubmitTask', 'query Task', 'mutation Cancel', 'subscription WatchTask'])
      expect(html).toContain(operation);
  });

  it('lets a person submit, query and cancel a task with no key of their own', async () => {
    const gql = async (query: string, variables = {}) =>
      (await (
        await fetch(`${url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query, variables }),
        })
      ).json()) as any;
    const submitted = await gql(
      `mutation { submitTask(input: { model: "gpt-image-2", prompt: "hello" }) { __typename ... on BaseTask { id } } }`,
    );
    expect(submitted.data.submitTask.__typename).toBe('QueuedTask');
    const { id } = submitted.data.submitTask;
    const read = await gql(`query($id: ID!) { task(id: $id) { ... on BaseTask { id status } } }`, { id });
    expect(read.data.task).toEqual({ id, status: 'QUEUED' });
    const cancelled = await gql(`mutation($id: ID!) { cancelTask(id: $id) { __typename } }`, { id });
    expect(cancelled.data.cancelTask.__typename).toBe('CancelledTask');
  });

  it('answers /healthz', async () => {
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
  });
});

describe('start-up with a bad configuration value', () => {
  it('exits 1 with one line naming the variable', async () => {
    const gateway = spawnEntry('src/main.ts', [], { PORT: 'eighty' });
    const [code] = await once(gateway.child, 'exit');
    expect(code).toBe(1);
    expect(gateway.output().trim()).toMatch(/^task-gateway: PORT must be a whole number from 0 to 65535; got "eighty"\.$/);
  });
});

describe('npm run emulator', () => {
  it('serves the Task API on its own', async () => {
    const emulator = spawnEntry('src/emulator/main.ts', ['0', 'older']);
    const [, base] = (await emulator.waitFor(/at (http:\/\/\S+\/v1)/)) as unknown as [string, string];
    const response = await fetch(`${base}/tasks`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-x', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-image-2' }),
    });
    const task = await response.json();
    expect(task).toMatchObject({ status: 'queued', progress: 0 });
    expect(task.created_at).toBeGreaterThan(1e12);
    expect(await emulator.stop()).toBe(0);
  });
});
