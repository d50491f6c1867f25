import type { Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { EmulatorOptions } from '../../src/emulator/emulator.ts';
import { createManualClock, createManualScheduler, eventually } from './clock.ts';
import { type Stack, startStack } from './stack.ts';
import { connectWs } from './ws-client.ts';

/**
 * What the subscription tests share: a stack on a manual clock (random 0.5, tasks queued 3 s and
 * processing 10 s unless `emulator` says otherwise), started before the describe block's tests and
 * stopped after them; WebSocket clients made by `connect` are closed after each test, and each test
 * must leave the poller without a loop.
 */
export function useManualStack(emulator: EmulatorOptions = {}) {
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  const clients: Client[] = [];
  let started: Stack | undefined;
  beforeAll(async () => {
    started = await startStack({
      emulator: { queuedMs: 3_000, processingMs: 10_000, ...emulator, now: clock.now },
      now: clock.now,
      scheduler,
      random: () => 0.5,
    });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.dispose()));
    await eventually(() => expect(started!.gateway.poller.stats().loops).toBe(0));
  });
  afterAll(() => started?.stop());
  return {
    clock,
    scheduler,
    /** The stack (once `beforeAll` has run). */
    get stack(): Stack {
      return started!;
    },
    /** A graphql-ws client of the stack with `key`, closed after the test. */
    connect(key: string | null): Client {
      const client = connectWs(started!.gatewayUrl, key);
      clients.push(client);
      return client;
    },
  };
}
