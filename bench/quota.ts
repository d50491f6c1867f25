/**
 * `npm run bench -- quota`: the upstream budget of one key under its quota.
 * 1,000 tasks of one key, one `taskUpdated` watcher each, poll interval 2 s, an
 * emulator allowing 50 requests per second per key (`429 quota_window_exceeded`
 * past it); the gateway runs as `npm start` does (its own process), alone and as
 * three replicas on one Redis. Printed beside the figures measured before the
 * per-key budget existed (issue 10).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { createEmulator, type Emulator } from '../src/emulator/emulator.ts';
import { freePort } from '../test/helpers/stack.ts';

import { startClients } from './clients-process.ts';

const TASKS = 1_000;
const CAP = 50; // requests per key per second
const STEADY_MS = 20_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts the gateway as `npm start` does, in its own process, with `env` added to its environment. */
export async function startGateway(
  upstreamUrl: string,
  redisUrl: string | null,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = fork(new URL('../src/main.ts', import.meta.url).pathname, [], {
    execArgv: ['--import', 'tsx'],
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      HOST: '127.0.0.1',
      UPSTREAM_URL: upstreamUrl,
      ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  while (!output.includes('GraphiQL at') || (redisUrl && !output.includes('redis coordination up'))) {
    if (child.exitCode !== null) throw new Error(`gateway exited: ${output}`);
    await sleep(50);
  }
  return { child, url: `http://127.0.0.1:${port}` };
}

/** Creates `count` tasks of `key` straight on the emulator, before its quota is switched on. */
export async function createTasks(emulator: Emulator, key: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, async () => {
        const response = await fetch(`${emulator.url}/tasks`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({ model: 'veo3.1-fast' }),
        });
        return ((await response.json()) as { task_id: string }).task_id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

interface Figures {
  share429: number;
  usefulPerSec: number;
  firstStateS: number;
  lastSawChangeS: number;
  requests: number;
}

async function measure(replicas: number, redisUrl: string | null): Promise<Figures> {
  const emulator = createEmulator({ queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 });
  const upstreamUrl = await emulator.start();
  // A key of its own per run: with Redis, what an earlier run learnt stays in Redis for an hour.
  const key = `sk-quota-${process.pid}-${Date.now()}`;
  const ids = await createTasks(emulator, key, TASKS);
  emulator.setRateLimit({ cap: CAP, windowMs: 1_000 });
  emulator.resetStats();
  const gateways: Array<{ child: ChildProcess; url: string }> = [];
  for (let i = 0; i < replicas; i++) gateways.push(await startGateway(upstreamUrl, redisUrl));
  // Ten watchers per socket: each replica's share of the tasks is a multiple of ten.
  const cut = (i: number) => Math.round((i * TASKS) / replicas / 10) * 10;
  const shares = gateways.map((_, i) => ids.slice(cut(i), cut(i + 1)));
  const clients = await Promise.all(gateways.map(() => startClients()));
  await Promise.all(
    clients.map((client, i) =>
      client.send(
        {
          type: 'open',
          url: `${gateways[i]!.url.replace('http', 'ws')}/graphql`,
          sockets: shares[i]!.length / 10,
          key,
          protocol: 'graphql-ws',
        },
        'opened',
      ),
    ),
  );
  const rejected = () => emulator.stats.rateLimited.get(key) ?? 0;
  const started = performance.now();
  await Promise.all(clients.map((client, i) => client.send({ type: 'hold', perSocket: 10, taskIds: shares[i] }, 'held')));
  const firstStateS = (performance.now() - started) / 1000;
  // Steady state: every task watched, nothing changing.
  const before = { requests: emulator.stats.requests, rejected: rejected() };
  await sleep(STEADY_MS);
  const requests = emulator.stats.requests - before.requests;
  const refused = rejected() - before.rejected;
  const usefulPerSec = (requests - refused) / (STEADY_MS / 1000);
  // Every task changes at once; time until the last watcher has seen it.
  const seen = Promise.all(
    clients.map((client, i) => client.send({ type: 'expect', match: 'COMPLETED', count: shares[i]!.length }, 'done')),
  );
  const changedAt = performance.now();
  for (const id of ids) emulator.pin(id, 'completed', 100);
  await seen;
  const lastSawChangeS = (performance.now() - changedAt) / 1000;
  const total = emulator.stats.requests;
  const share429 = rejected() / total;
  for (const client of clients) client.stop();
  for (const gateway of gateways) gateway.child.kill('SIGTERM');
  await Promise.all(gateways.filter((g) => g.child.exitCode === null).map((g) => once(g.child, 'exit')));
  await emulator.stop();
  return { share429, usefulPerSec, firstStateS, lastSawChangeS, requests: total };
}

/** Runs the quota section: one replica, then three on `redisUrl` (skipped when null). */
export async function quota(redisUrl: string | null, heading: (detail: string) => void): Promise<void> {
  const floor = TASKS / CAP;
  heading(`: ${TASKS.toLocaleString('en')} tasks of one key, one watcher each, interval 2 s, upstream limit ${CAP}/s per key`);
  console.log(
    `   floor N/R = ${floor} s; targets: 429s <= 5 %, useful reads >= ${0.9 * CAP}/s, first states and last change seen <= ${1.5 * floor} s`,
  );
  console.log('   setup                | 429 share | useful reads/s | all first states | last watcher saw the change | requests');
  console.log('   before (issue 10)    |      89 % |           ~50  |           > 50 s |  57-115 s (some > 120 s)    |');
  for (const [replicas, redis] of [
    [1, null],
    [3, redisUrl],
  ] as const) {
    if (replicas > 1 && !redis) continue;
    const figures = await measure(replicas, redis);
    const label = replicas === 1 ? '1 gateway' : `${replicas} replicas, Redis`;
    console.log(
      `   ${label.padEnd(20)} | ${(figures.share429 * 100).toFixed(1).padStart(7)} % | ${figures.usefulPerSec.toFixed(1).padStart(14)} | ${`${figures.firstStateS.toFixed(1)} s`.padStart(16)} | ${`${figures.lastSawChangeS.toFixed(1)} s`.padStart(27)} | ${figures.requests}`,
    );
  }
}
