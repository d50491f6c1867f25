/**
 * Section 6 of `npm run bench`: the upstream cost of `tasksUpdated(ids)` for
 * 100 ids beside that of 100 `taskUpdated` subscriptions to the same ids, and
 * of both at once (they share the poll loops): upstream GETs per poll interval.
 */
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startStack } from '../test/helpers/stack.ts';

const KEY = 'sk-bench-dashboard';
const TASKS = 100;
const INTERVAL_MS = 250;
const MEASURE_MS = 5_000;
const ONE = 'subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status progress } } }';
const MANY = 'subscription($ids: [ID!]!) { tasksUpdated(ids: $ids) { __typename ... on BaseTask { id status progress } } }';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function dashboard(heading: (detail: string) => void): Promise<void> {
  // Tasks that stay queued: no change ever, so every interval is the same length (POLL_MAX = POLL_INTERVAL).
  const stack = await startStack({
    emulator: { queuedMs: 3_600_000, sweepIntervalMs: 3_600_000 },
    env: { POLL_INTERVAL_MS: String(INTERVAL_MS), POLL_MAX_INTERVAL_MS: String(INTERVAL_MS) },
  });
  const { gateway, gatewayUrl: url } = stack;
  const emulator = stack.emulator!;
  const ids: string[] = [];
  for (let i = 0; i < TASKS; i++) {
    ids.push(
      (await stack.gql('mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }', {}, KEY)).data.submitTask.id,
    );
  }
  const connect = () =>
    createClient({
      url: `${url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${KEY}` },
    });

  /** Opens the watchers, waits for every first state, then counts GETs over MEASURE_MS. */
  async function measure(open: (clients: Client[]) => Promise<void>): Promise<{ perInterval: number; loops: number }> {
    const clients: Client[] = [];
    await open(clients);
    emulator.resetStats();
    const started = performance.now();
    await sleep(MEASURE_MS);
    const gets = [...emulator.stats.gets.values()].reduce((sum, n) => sum + n, 0);
    const intervals = (performance.now() - started) / INTERVAL_MS;
    const { loops } = gateway.poller.stats();
    await Promise.all(clients.map((client) => client.dispose()));
    while (gateway.poller.stats().loops > 0) await sleep(20);
    return { perInterval: gets / intervals, loops };
  }

  const watchEach = async (clients: Client[]) => {
    const client = connect();
    clients.push(client);
    let first = 0;
    await new Promise<void>((resolve) => {
      for (const id of ids) {
        client.subscribe(
          { query: ONE, variables: { id } },
          { next: () => ++first === TASKS && resolve(), error: () => undefined, complete: () => undefined },
        );
      }
    });
  };
  const watchAll = async (clients: Client[]) => {
    const client = connect();
    clients.push(client);
    let first = 0;
    await new Promise<void>((resolve) => {
      client.subscribe(
        { query: MANY, variables: { ids } },
        { next: () => ++first === TASKS && resolve(), error: () => undefined, complete: () => undefined },
      );
    });
  };

  const each = await measure(watchEach);
  const all = await measure(watchAll);
  const both = await measure(async (clients) => {
    await watchEach(clients);
    await watchAll(clients);
  });
  const line = (label: string, { perInterval, loops }: { perInterval: number; loops: number }) =>
    console.log(`   ${label.padEnd(44)} ${perInterval.toFixed(1).padStart(6)} GETs per interval, ${loops} loops`);
  heading(`: ${TASKS} tasks, interval ${INTERVAL_MS} ms, GETs counted over ${MEASURE_MS / 1000} s`);
  line(`${TASKS} taskUpdated subscriptions (baseline)`, each);
  line(`one tasksUpdated(ids) with the same ${TASKS} ids`, all);
  line('both at once (shared loops)', both);
  await stack.stop();
}
