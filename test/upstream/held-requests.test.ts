import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/lib/sha256.ts';
import { eventually } from '../helpers/clock.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const SUBMIT = 'mutation { submitTask(input: { model: "m", waitSeconds: 60 }) { __typename } }';
const TASK = `query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id } } }`;

/** Sends `count` submits of `key` that the upstream holds a minute each; `giveUp` cuts them at the end of the test. */
function holdSubmits(stack: Stack, key: string, count: number, giveUp: AbortSignal): Array<Promise<unknown>> {
  return Array.from({ length: count }, () =>
    fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: SUBMIT }),
      signal: giveUp,
    }).catch(() => null),
  );
}

/** A task of `key`, submitted without waiting: it also makes the key known to the upstream. */
async function taskOf(stack: Stack, key: string): Promise<string> {
  const { data } = await stack.gql(`mutation { submitTask(input: { model: "m" }) { ... on BaseTask { id } } }`, {}, key);
  return data.submitTask.id as string;
}

async function timedRead(stack: Stack, key: string, id: string): Promise<number> {
  const started = performance.now();
  const { data, errors } = await stack.gql(TASK, { id }, key);
  expect(errors).toBeUndefined();
  expect(data.task.id).toBe(id);
  return performance.now() - started;
}

// Tasks stay queued for two minutes: each `Prefer: wait=60` holds its request for a minute.
describe('long-held submits (waitSeconds), counted apart from short requests', () => {
  it("leave another key's task(id) under a second while 16 keys hold 8 each, the pool of 128 notwithstanding", async () => {
    const stack = await startStack({ emulator: { queuedMs: 120_000 }, env: { MAX_UPSTREAM_IN_FLIGHT: '128' } });
    const other = await taskOf(stack, 'sk-other');
    const keys = Array.from({ length: 16 }, (_, i) => `sk-holder-${i}`);
    for (const key of keys) await taskOf(stack, key);
    const giveUp = new AbortController();
    const long = keys.flatMap((key) => holdSubmits(stack, key, 8, giveUp.signal));
    // A quarter of the pool is for long-held requests: 32 go, the other 96 wait their turn.
    await eventually(() => expect(stack.gateway.requestScheduler.stats()).toMatchObject({ inFlight: 32, queued: 96 }));
    expect(await timedRead(stack, 'sk-other', other)).toBeLessThan(1_000);
    giveUp.abort();
    await Promise.all(long);
  });

  it("leave the same key's other queries under a second while one client holds 12 submits", async () => {
    const stack = await startStack({ emulator: { queuedMs: 120_000 } });
    const id = await taskOf(stack, 'sk-shared');
    const giveUp = new AbortController();
    const long = holdSubmits(stack, 'sk-shared', 12, giveUp.signal);
    // Eight in flight for the key, four waiting behind them; none of them in the way of a read.
    await eventually(() => expect(stack.gateway.requestScheduler.stats()).toMatchObject({ inFlight: 8, queued: 4 }));
    expect(await timedRead(stack, 'sk-shared', id)).toBeLessThan(1_000);
    // The busy key is visible per key in the metrics, named by a prefix of its hash, never by the key.
    const metrics = await (await fetch(`${stack.gatewayUrl}/metrics`)).text();
    const label = `{key="${sha256('sk-shared').slice(0, 8)}"}`;
    for (const name of ['concurrency_limit', 'rate_per_second', 'latency_seconds']) {
      expect(metrics).toContain(`task_gateway_upstream_key_${name}${label}`);
    }
    expect(metrics).not.toContain('sk-shared');
    giveUp.abort();
    await Promise.all(long);
  });
});
