import { randomUUID } from 'node:crypto';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually } from './helpers/clock.ts';
import { getsBy, submit, watchEverywhere } from './helpers/fleet.ts';
import { type Replica, startReplicas } from './helpers/replicas.ts';
import { type ScriptedUpstream, startScriptedUpstream } from './helpers/scripted-upstream.ts';

const KEY = 'sk-fleet-backoff';

describe('three replicas sharing a loop while the upstream fails', () => {
  let upstream: ScriptedUpstream;
  let replicas: Replica[];
  const clients: Client[] = [];

  beforeAll(async () => {
    // A task id of this run's own: the loop's lease lives in the Redis every test run on this machine shares.
    upstream = await startScriptedUpstream(`task-fleet-backoff-${randomUUID()}`);
    upstream.script({ status: 'processing', progress: 10 });
    // Interval 200 ms: the lease is 600 ms, and one replica's backoff outlasts it from its third failure.
    replicas = await startReplicas(3, { redisUrl: inject('redisUrl'), upstreamUrl: upstream.url });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await upstream.stop();
  });

  it('back off as one: the holder keeps the lease over its backoff, so no other replica polls with a backoff of its own', async () => {
    const id = await submit(replicas[0]!, KEY);
    const watchers = watchEverywhere(replicas, id, 2, clients, KEY).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    const before = await Promise.all(replicas.map(getsBy));
    upstream.script({ fault: 500 });
    // Six failed polls: one replica backing off alone (200 ms doubled per failure) makes them within
    // about 6 s. Replicas that each took the lease when it lapsed (600 ms) would each start their backoff
    // over at 200 ms: the six would come from two or three of them.
    const made = await eventually(async () => {
      const now = (await Promise.all(replicas.map(getsBy))).map((count, i) => count - before[i]!);
      expect(now.reduce((a, b) => a + b)).toBeGreaterThanOrEqual(6);
      return now;
    }, 30_000);
    const total = made.reduce((a, b) => a + b);
    // A holder whose event loop stalls past its lease on a busy machine is rightly replaced: one hand-over is allowed.
    expect(Math.max(...made), `failed polls by replica: ${made.join(', ')}`).toBeGreaterThanOrEqual(total - 1);
    // The failures end no watcher: they are transient.
    expect(watchers.every((w) => !w.completed)).toBe(true);
    upstream.script({ status: 'completed' });
    await eventually(() => expect(watchers.every((w) => w.completed)).toBe(true), 15_000);
  }, 60_000);
});
