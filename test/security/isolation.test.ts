import { Writable } from 'node:stream';
import { createClient as createSseClient } from 'graphql-sse';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { eventually } from '../helpers/clock.ts';
import { createGate } from '../helpers/gate.ts';
import { track } from '../helpers/leftovers.ts';
import { freePort, type Stack, startStack } from '../helpers/stack.ts';
import { json, type StandIn, startStandIn } from '../helpers/stand-in.ts';
import { connectWs, watch } from '../helpers/ws-client.ts';

const KEYS = ['sk-alice-0123456789', 'sk-bob-0123456789', 'sk-carol-0123456789'] as const;
const SUBMIT = `mutation($p: String) { submitTask(input: { model: "gpt-image-2", prompt: $p, idempotencyKey: "same-for-everyone" }) { ... on BaseTask { id } } }`;
const TASK = `query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id } } }`;

describe('isolation between keys, on every surface', () => {
  let stack: Stack;
  const logs: string[] = [];
  const tasks = new Map<string, string>();
  const clients: Client[] = [];

  beforeAll(async () => {
    const port = await freePort();
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logs.push(chunk.toString());
        done();
      },
    });
    stack = await startStack({
      emulator: { queuedMs: 200, processingMs: 400, sweepIntervalMs: 20 },
      env: { PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, POLL_INTERVAL_MS: '50', POLL_MAX_INTERVAL_MS: '100' },
      logger: createLogger('trace', sink),
    });
    for (const key of KEYS) tasks.set(key, (await stack.gql(SUBMIT, { p: key.slice(0, 8) }, key)).data.submitTask.id);
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await stack.stop();
  });

  it('gives each key its own task for the same idempotency key', () => {
    expect(new Set(tasks.values()).size).toBe(KEYS.length);
  });

  it("answers queries and batch queries with null for every other key's task", async () => {
    for (const key of KEYS) {
      for (const [owner, id] of tasks) {
        const { data } = await stack.gql(TASK, { id }, key);
        expect(data.task === null).toBe(owner !== key);
      }
      const { data } = await stack.gql(
        `query($ids: [ID!]!) { tasks(ids: $ids) { ... on BaseTask { id } } }`,
        { ids: [...tasks.values()] },
        key,
      );
      expect(data.tasks.map((task: { id: string } | null) => task?.id ?? null)).toEqual(
        [...tasks].map(([owner, id]) => (owner === key ? id : null)),
      );
    }
  });

  it("refuses another key's cancel and leaves the task untouched", async () => {
    const [alice, bob] = KEYS;
    const id = (await stack.gql(`mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }`, {}, alice)).data
      .submitTask.id;
    const { data } = await stack.gql(`mutation($id: ID!) { cancelTask(id: $id) { __typename } }`, { id }, bob);
    expect(data.cancelTask.__typename).toBe('TaskNotFoundError');
    const own = await stack.gql(TASK, { id }, alice);
    expect(own.data.task.__typename).not.toBe('CancelledTask');
  });

  it("never shows a WebSocket or SSE watcher another key's loop, terminal cache or webhook", async () => {
    const [alice, bob] = KEYS;
    const id = tasks.get(alice)!;
    const owner = connectWs(stack.gatewayUrl, alice);
    const intruder = connectWs(stack.gatewayUrl, bob);
    clients.push(owner, intruder);
    const ownerWatch = watch(owner, id);
    await eventually(() => expect(ownerWatch.results.length).toBeGreaterThan(0));
    const intruderWatch = watch(intruder, id);
    const sseStates: unknown[] = [];
    const sse = createSseClient({ url: `${stack.gatewayUrl}/graphql`, headers: { authorization: `Bearer ${bob}` }, retryAttempts: 0 });
    track(() => sse.dispose());
    sse.subscribe(
      { query: `subscription($id: ID!) { taskUpdated(id: $id) { __typename } }`, variables: { id } },
      { next: (r) => sseStates.push(r), error: (e) => sseStates.push(String(e)), complete: () => undefined },
    );
    await eventually(() => expect(ownerWatch.completed).toBe(true));
    await eventually(() => expect(intruderWatch.completed).toBe(true));
    expect(intruderWatch.states()).toEqual(['error:NOT_FOUND']);
    await eventually(() => expect(sseStates).toHaveLength(1));
    expect(JSON.stringify(sseStates)).toContain('NOT_FOUND');
    // Alice's finished task is in the terminal cache now; Bob still gets null, from the upstream itself.
    const before = stack.emulator!.stats.gets.get(id)!;
    const query = await stack.gql(TASK, { id }, bob);
    expect(query.data.task).toBeNull();
    expect(stack.emulator!.stats.gets.get(id)).toBe(before + 1);
    const late = watch(intruder, id);
    await eventually(() => expect(late.completed).toBe(true));
    expect(late.states()).toEqual(['error:NOT_FOUND']);
    sse.dispose();
  });

  it('keeps keys and webhook tokens out of logs, errors and metrics', async () => {
    const [alice] = KEYS;
    const failing = await stack.gql(TASK, { id: 'task-does-not-exist' }, 'sk-rejected-key-xyz');
    const metrics = await (await fetch(`${stack.gatewayUrl}/metrics`)).text();
    const everything = [logs.join(''), metrics, JSON.stringify(failing)].join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of [...KEYS, 'sk-rejected-key-xyz']) expect(everything).not.toContain(secret);
    const callbackUrl = stack.emulator!.callbackUrlOf(tasks.get(alice)!)!;
    expect(callbackUrl).toMatch(/\/webhooks\/tasks\//);
    expect(everything).not.toContain(callbackUrl.split('/').pop());
    expect(metrics).toContain('task_gateway_upstream_requests_total');
  });
});

describe('in-flight sharing never crosses keys', () => {
  let upstream: StandIn;
  let stack: Stack;
  const gate = createGate();
  beforeAll(async () => {
    // Every answer waits behind the gate: the reads overlap for certain, however busy the machine.
    upstream = await startStandIn(async (request, response) => {
      await gate.passed();
      if (request.headers.authorization !== 'Bearer sk-owner') return json(response, 404, { error: { code: 'task_not_found' } });
      json(response, 200, { task_id: 'task-shared', status: 'processing', progress: 10, model: 'm', created_at: 1_720_000_000 });
    });
    stack = await startStack({ upstreamUrl: upstream.url });
  });
  afterAll(async () => {
    gate.open();
    await stack.stop();
    await upstream.stop();
  });

  it('asks the upstream once per key for simultaneous reads of one id', async () => {
    // Four reads started in one turn, two per key, through the shared poller every transport reads through.
    const reads = ['sk-owner', 'sk-other', 'sk-owner', 'sk-other'].map((key) =>
      stack.gateway.poller.read(createCredential(key), 'task-shared').then(
        (task) => task.id,
        (error: Error) => error.name,
      ),
    );
    await eventually(() => expect(upstream.requests).toHaveLength(2));
    gate.open();
    expect(await Promise.all(reads)).toEqual(['task-shared', 'TaskNotFoundError', 'task-shared', 'TaskNotFoundError']);
    const byKey = upstream.requests.map((request) => request.headers.authorization).sort();
    expect(byKey).toEqual(['Bearer sk-other', 'Bearer sk-owner']);
  });
});
