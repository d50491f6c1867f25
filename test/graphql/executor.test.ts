import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parse } from 'graphql';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../src/emulator/emulator.ts';
import { schema } from '../../src/executable-schema.ts';
import { createRequestContext } from '../../src/graphql/context.ts';
import { createExecutor } from '../../src/graphql/executor.ts';
import { createTaskPoller, type TaskPoller } from '../../src/pollers/task-poller.ts';
import { createMemoryRecentTasks } from '../../src/recent-tasks/recent-tasks.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { createTasksClient, type TasksClient } from '../../src/upstream/tasks-client.ts';
import { track } from '../helpers/leftovers.ts';
import { type Stack, startEmulator, startStack } from '../helpers/stack.ts';
import { connectWs } from '../helpers/ws-client.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMiB = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

/**
 * An operation of about `chars` characters, distinct by `tag`: the memory attack of issue 11.
 * Past about 1,000 repeated fields graphql-js refuses it ("Validation aborted."), after parsing it.
 */
const bigOperation = (tag: number, chars = 64_000) => `{ ${'__typename '.repeat(Math.floor(chars / 11) - 2)}} #${tag}`;
/** A valid operation of about `chars` characters (a long string argument), distinct by `tag`. */
const bigValidOperation = (tag: number, chars = 64_000) => `{ task(id: "${'t'.repeat(chars)}") { __typename } } #${tag}`;

describe('the operation cache', () => {
  it('keeps each valid operation text parsed once, and none that failed', () => {
    const executor = createExecutor({ schema });
    const valid = '{ __typename }';
    expect(executor.prepare(valid)).toBe(executor.prepare(valid));
    const invalid = '{ noSuchField }';
    expect(executor.prepare(invalid).errors).toHaveLength(1);
    expect(executor.prepare(invalid)).not.toBe(executor.prepare(invalid));
  });

  it('forgets the least recently used operations past its bound in characters', () => {
    const executor = createExecutor({ schema, maxOperationChars: 200_000 });
    const small = '{ __typename }';
    const first = executor.prepare(small);
    const big = Array.from({ length: 10 }, (_, tag) => bigValidOperation(tag));
    const firstBig = executor.prepare(big[0]!);
    for (const text of big.slice(1)) {
      executor.prepare(text);
      // Used all along, the small one stays.
      expect(executor.prepare(small)).toBe(first);
    }
    expect(executor.prepare(big[0]!)).not.toBe(firstBig);
  });

  it('refuses an operation past its token limit with GRAPHQL_PARSE_FAILED', () => {
    const executor = createExecutor({ schema, maxTokens: 100 });
    const { errors } = executor.prepare(bigOperation(1, 2_000));
    expect(errors[0]?.extensions.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('grows a gateway by at most 48 MiB for 100 distinct 64 KB operations over WebSocket', async () => {
    const stack = await startStack();
    try {
      const client = connectWs(stack.gatewayUrl, 'sk-memory');
      // Refused or answered, each operation ends its own subscription.
      const run = (query: string) =>
        new Promise<void>((resolve) => client.subscribe({ query }, { next: () => undefined, error: () => resolve(), complete: resolve }));
      await run('{ __typename }');
      const before = heapMiB();
      for (let tag = 0; tag < 100; tag++) await run(tag % 2 ? bigOperation(tag, 60_000) : bigValidOperation(tag, 60_000));
      const grown = heapMiB() - before;
      await client.dispose();
      expect(grown).toBeLessThan(48);
    } finally {
      await stack.stop();
    }
  });
});

describe('shared subscription executions', () => {
  let emulator: Emulator;
  let client: TasksClient;
  let poller: TaskPoller;
  const credential = createCredential('sk-shared');
  beforeAll(async () => {
    emulator = await startEmulator({ queuedMs: 60_000 });
    client = createTasksClient({ baseUrl: emulator.url });
    track(() => client.close());
    poller = createTaskPoller({ client });
    track(() => poller.dispose());
  });

  // One parsed document, as the operation cache hands it to every subscriber that sends the same text.
  const document = parse('subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id } } }');

  async function subscribe(executor: ReturnType<typeof createExecutor>, variables: Record<string, unknown>) {
    const services = {
      tasksClient: client,
      poller,
      recentTasks: createMemoryRecentTasks(),
      defaultCredential: null,
      webhooks: { prepare: () => null },
      now: Date.now,
    };
    const result = await executor.execute({
      schema,
      document,
      variableValues: variables,
      contextValue: createRequestContext(services, { credential }),
    });
    return result as AsyncIterableIterator<unknown>;
  }

  it('executes each change once for subscribers whose declared variables match, whatever else they send', async () => {
    const task = await client.submitTask({ model: 'm' }, credential);
    const executor = createExecutor({ schema });
    const plain = await subscribe(executor, { id: task.id });
    const junk = await subscribe(executor, { id: task.id, junk: 'x'.repeat(10_000) });
    const [a, b] = await Promise.all([plain.next(), junk.next()]);
    expect(a.value).toMatchObject({ data: { taskUpdated: { id: task.id } } });
    expect(b.value).toBe(a.value);
    // Another gateway's executor shares nothing with this one.
    const other = await subscribe(createExecutor({ schema }), { id: task.id });
    const c = await other.next();
    expect(c.value).toEqual(a.value);
    expect(c.value).not.toBe(a.value);
    await Promise.all([plain.return?.(), junk.return?.(), other.return?.()]);
  });

  it('keeps nothing of what 500 subscribers to a finished task sent as junk variables', async () => {
    const stack: Stack = await startStack({ emulator: { queuedMs: 0, processingMs: 0 } });
    try {
      const { data } = await stack.gql('mutation { submitTask(input: { model: "m" }) { ... on BaseTask { id } } }', {}, 'sk-junk');
      const id = data.submitTask.id as string;
      const ws = connectWs(stack.gatewayUrl, 'sk-junk');
      const query = 'subscription($id: ID!) { taskUpdated(id: $id) { __typename } }';
      const watchOnce = (junk: string) =>
        new Promise<unknown>((resolve, reject) => {
          let last: unknown;
          ws.subscribe(
            { query, variables: { id, junk } },
            { next: (value) => (last = value), error: reject, complete: () => resolve(last) },
          );
        });
      await watchOnce('warm-up');
      const before = heapMiB();
      const results = await Promise.all(Array.from({ length: 500 }, (_, i) => watchOnce(`${i}${'j'.repeat(60_000)}`)));
      expect(results.every((result) => (result as any).data.taskUpdated.__typename === 'CompletedTask')).toBe(true);
      const grown = heapMiB() - before;
      await ws.dispose();
      expect(grown).toBeLessThan(8);
    } finally {
      await stack.stop();
    }
  });
});
