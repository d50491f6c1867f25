import type { Client } from 'graphql-ws';
import { expect } from 'vitest';
import type { Emulator } from '../../src/emulator/emulator.ts';
import { eventually } from './clock.ts';
import type { Replica } from './replicas.ts';
import { connectWs, type Watch, watch } from './ws-client.ts';

/** The API key the fleet tests submit and watch with. */
export const FLEET_KEY = 'sk-fleet';

/** Submits a task through `replica`; resolves to its id. */
export async function submit(replica: Replica, key = FLEET_KEY): Promise<string> {
  const response = await fetch(`${replica.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: 'mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }' }),
  });
  const body = (await response.json()) as any;
  if (!body.data) throw new Error(`submitTask failed: ${JSON.stringify(body.errors)}`);
  return body.data.submitTask.id;
}

/** The ids `recentTasks` lists on `replica` for the key. */
export async function recentIds(replica: Replica, key = FLEET_KEY): Promise<string[]> {
  const response = await fetch(`${replica.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: '{ recentTasks(first: 50) { edges { node { ... on BaseTask { id } } } } }' }),
  });
  const body = (await response.json()) as any;
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data.recentTasks.edges.map((edge: any) => edge.node.id);
}

/** `count` watchers of `id` on each replica; returns them by replica. */
export function watchEverywhere(replicas: Replica[], id: string, count: number, clients: Client[], key = FLEET_KEY): Watch[][] {
  return replicas.map((replica) => {
    const client = connectWs(replica.url, key);
    clients.push(client);
    return Array.from({ length: count }, () => watch(client, id));
  });
}

/** Upstream GETs a replica has made so far (every outcome), as its /metrics counts them. */
export async function getsBy(replica: Replica): Promise<number> {
  const text = await (await fetch(`${replica.url}/metrics`)).text();
  let total = 0;
  for (const [, value] of text.matchAll(/^task_gateway_upstream_requests_total\{endpoint="get"[^}]*\} (\d+)$/gm)) total += Number(value);
  return total;
}

/** How a replica's `/readyz` reports coordination: `redis`, `degraded: polling locally` or `local`. */
export async function coordination(replica: Replica): Promise<string> {
  return ((await (await fetch(`${replica.url}/readyz`)).json()) as { coordination: string }).coordination;
}

/**
 * Upstream GETs by each replica (of any task: watch one task at a time) while the emulator sees
 * `polls` GETs of task `id`: the replicas share its loop when one made (nearly) all and the others none.
 */
export async function getsDuring(
  emulator: Emulator,
  replicas: Replica[],
  id: string,
  polls = 10,
): Promise<{ seen: number; made: number[] }> {
  const upstreamGets = () => emulator.stats.gets.get(id) ?? 0;
  const before = { upstream: upstreamGets(), byReplica: await Promise.all(replicas.map(getsBy)) };
  await eventually(() => expect(upstreamGets() - before.upstream).toBeGreaterThanOrEqual(polls), 20_000);
  const seen = upstreamGets() - before.upstream;
  const made = (await Promise.all(replicas.map(getsBy))).map((count, i) => count - before.byReplica[i]!);
  return { seen, made };
}

/** Asserts that one replica (the lease holder) made every GET of a window and the others none. */
export function expectOnePoller({ seen, made }: { seen: number; made: number[] }): void {
  expect(made.filter((count) => count === 0)).toHaveLength(made.length - 1);
  // Its one poll at a time may still be in flight.
  expect(Math.max(...made)).toBeGreaterThanOrEqual(seen - 1);
}

export const terminal = (state: string) => /COMPLETED|FAILED|CANCELLED/.test(state);

/** Waits until every watcher has ended, then asserts that each ended without an error on exactly one terminal state: completed. */
export async function expectCompletedOnce(watchers: Watch[], timeoutMs = 20_000): Promise<void> {
  await eventually(() => expect(watchers.every((w) => w.completed)).toBe(true), timeoutMs);
  for (const watcher of watchers) {
    expect(watcher.error).toBeUndefined();
    expect(watcher.states().filter(terminal)).toEqual(['CompletedTask:COMPLETED:100']);
  }
}

/**
 * Resolves once a window of `polls` GETs of task `id` had one poller (sharing came back), trying
 * window after window for up to `timeoutMs`: a liveness bound, not a timing assertion.
 */
export async function sharingReturns(emulator: Emulator, replicas: Replica[], id: string, timeoutMs = 20_000): Promise<void> {
  await eventually(async () => expectOnePoller(await getsDuring(emulator, replicas, id, 5)), timeoutMs);
}
