/**
 * `npm run bench`: figures for the shared poller, printed, never asserted.
 * Its sections, numbered as printed (SECTIONS below):
 *  1. upstream GETs per poll interval for 1, 100, 1,000 and 10,000 subscribers,
 *     beside what polling per subscriber would cost;
 *  2. memory per idle subscription in the gateway (heap + external), with 100
 *     subscriptions sharing each socket;
 *  3. time from an upstream change (signalled by webhook) to the last of
 *     10,000 subscribers receiving it, beside a raw `ws` broadcast of the same
 *     bytes to as many sockets from the same client process;
 *  4. a soak: 10,000 subscriptions held through 100,000 subscribe/unsubscribe
 *     cycles against an upstream that fails 2% of its answers, then memory
 *     against the baseline and the poll loops left.
 *  5. upstream GETs per interval for one task watched through 1 and 3 gateway
 *     processes sharing their loops through Redis (REDIS_URL, default
 *     redis://127.0.0.1:6379; a redis-server is started when none answers).
 *  6. upstream GETs per interval of one tasksUpdated(ids) for 100 ids beside
 *     100 taskUpdated subscriptions to the same ids, and both at once (bench/dashboard.ts).
 *  7. idle RSS of a started gateway (`npm start`: `node dist/main.js`, built when
 *     stale), beside the same gateway transpiled at start by tsx (`npm run dev`).
 *  8. performance at the limit (bench/performance.ts): per-poll CPU, RSS per watched task,
 *     100,000 subscriptions, the HTTP path and the GraphiQL page, each beside its baseline.
 *  9. the upstream budget of one key under its quota (bench/quota.ts): 1,000 watched tasks,
 *     50 requests/s, 1 gateway and 3 replicas on Redis, beside the figures before the budget.
 * 10. the cost of OpenTelemetry tracing (bench/tracing.ts): task(id) over HTTP at 100 % sampling,
 *     CPU per poll at 100 % and 10 %, beside the same build with tracing off, and one poll's span
 *     alone in a process.
 * 11. end users' tokens (bench/auth.ts): task(id) over HTTP with a JWT and RSS per WebSocket
 *     subscription in jwt mode, each beside the same gateway in key mode.
 * `npm run bench -- fanout` runs sections 1 to 3, `-- soak`, `-- replicas`, `-- dashboard`, `-- idle`,
 * `-- performance [polls|watchers|http]`, `-- quota [budget|latency]`, `-- tracing [http|polls|span]` and `-- auth [http|memory]` that section alone.
 * Clients run in a child process (bench/clients.ts) so the gateway is measured alone;
 * servers, replicas and Redis come from the test helpers (test/helpers/).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';
import { disposeLeftovers } from '../test/helpers/leftovers.ts';
import { connectRedis, redisAnswers, startRedisServer } from '../test/helpers/redis-server.ts';
import { startReplicas } from '../test/helpers/replicas.ts';
import { freePort, type Stack, startEmulator, startStack } from '../test/helpers/stack.ts';
import { auth } from './auth.ts';
import { startClients } from './clients-process.ts';
import { dashboard } from './dashboard.ts';
import { runPerformance } from './performance.ts';
import { quota } from './quota.ts';
import { quotaLatency } from './quota-latency.ts';
import { tracing } from './tracing.ts';

const KEY = 'sk-bench';
const SUBMIT = 'mutation { submitTask(input: { model: "veo3.1-fast" }) { ... on BaseTask { id } } }';
const INTERVAL_MS = 250;
const SOCKETS = 100;
const ROUNDS = 7;
/** The sections, in the order they print; each prints its number from here. */
const SECTIONS = {
  gets: 'Upstream GETs per poll interval',
  memory: 'Memory per idle subscription (gateway process: heap + external + array buffers)',
  latency: `Upstream change to the last of 10,000 subscribers (webhook), median of ${ROUNDS} rounds`,
  soak: 'Soak: 10,000 subscriptions held',
  replicas: 'Upstream GETs per poll interval for one task, replicas sharing loops through Redis',
  dashboard: 'Upstream cost of a dashboard',
  idle: 'Idle RSS of a started gateway (embedded emulator, no traffic, 3 s after listening)',
  performance: 'Performance at the limit, beside the bare libraries (each process measured alone from /proc)',
  quota: 'Upstream quota',
  tracing: 'Tracing (OpenTelemetry, OTLP/HTTP) beside the same build with tracing off (each process measured alone from /proc)',
  auth: "End users' tokens (AUTH_MODE=jwt) beside key mode, same run",
};
const heading = (section: keyof typeof SECTIONS, detail = '') =>
  console.log(`\n${Object.keys(SECTIONS).indexOf(section) + 1}. ${SECTIONS[section]}${detail}`);
const submit = async (stack: Stack) => (await stack.gql(SUBMIT, {}, KEY)).data.submitTask.id as string;
const gc = (globalThis as { gc?: () => void }).gc;

const wallClock = () => performance.timeOrigin + performance.now();
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const memory = () => {
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external + usage.arrayBuffers;
};

/** Section 4: the soak, on its own emulator (2% faults) and gateway. */
async function soak() {
  const stack = await startStack({
    emulator: { queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000, faultRate: 0.02, hangMs: 1_000 },
    env: { POLL_INTERVAL_MS: '200', POLL_MAX_INTERVAL_MS: '500', UPSTREAM_TIMEOUT_MS: '500' },
  });
  const { gateway } = stack;
  const emulator = stack.emulator!;
  const wsUrl = `${stack.gatewayUrl.replace('http', 'ws')}/graphql`;
  const taskIds: string[] = [];
  for (let i = 0; i < 200; i++) taskIds.push(await submit(stack));
  const clients = await startClients();
  await clients.send({ type: 'open', url: wsUrl, sockets: SOCKETS, key: KEY, protocol: 'graphql-ws' }, 'opened');
  // Warm-up: one full hold and release, so the baseline includes what the first use allocates for good.
  await clients.send({ type: 'hold', perSocket: 100, taskIds }, 'held');
  await clients.send({ type: 'release' }, 'released');
  while (gateway.poller.stats().loops > 0) await sleep(20);
  await sleep(200);
  const baseline = memory();
  const started = performance.now();
  await clients.send({ type: 'hold', perSocket: 100, taskIds }, 'held');
  const held = gateway.poller.stats();
  const { cycles } = await clients.send({ type: 'churn', cycles: 100_000, perSocketPerRound: 10 }, 'churned');
  const during = gateway.poller.stats();
  await clients.send({ type: 'release' }, 'released');
  while (gateway.poller.stats().subscribers > 0 || gateway.poller.stats().loops > 0) await sleep(20);
  const seconds = (performance.now() - started) / 1000;
  await sleep(200);
  const after = memory();
  heading('soak', `, ${cycles.toLocaleString('en')} subscribe/unsubscribe cycles, 2% upstream faults`);
  console.log(
    `   held: ${held.subscribers.toLocaleString('en')} subscriptions on ${held.loops} loops; still ${during.subscribers.toLocaleString('en')} after the churn`,
  );
  console.log(
    `   upstream GETs: ${[...emulator.stats.gets.values()].reduce((a, b) => a + b, 0).toLocaleString('en')}, of which faults: ${emulator.stats.faults}`,
  );
  console.log(`   took ${seconds.toFixed(1)} s`);
  console.log(
    `   memory: baseline ${(baseline / 2 ** 20).toFixed(1)} MiB, after ${(after / 2 ** 20).toFixed(1)} MiB (${(((after - baseline) / baseline) * 100).toFixed(1)}%, target within 10%)`,
  );
  console.log(`   poll loops at the end: ${gateway.poller.stats().loops}; subscriptions: ${gateway.poller.stats().subscribers}`);
  await clients.send({ type: 'close' }, 'closed');
  clients.stop();
  await stack.stop();
}

/** Sections 1 to 3, on one emulator and gateway. */
async function fanout() {
  // The benchmark sends the callback itself, at a known instant: the emulator's own sweep stays out of the way.
  const port = await freePort();
  const stack = await startStack({
    emulator: { queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 },
    env: {
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      POLL_INTERVAL_MS: String(INTERVAL_MS),
      POLL_MAX_INTERVAL_MS: String(INTERVAL_MS),
    },
  });
  const { gateway } = stack;
  const emulator = stack.emulator!;
  const wsUrl = `${stack.gatewayUrl.replace('http', 'ws')}/graphql`;

  heading('gets');
  console.log('   subscribers | gateway GETs/interval | per-subscriber polling GETs/interval');
  for (const subscribers of [1, 100, 1_000, 10_000]) {
    const clients = await startClients();
    const sockets = Math.min(SOCKETS, subscribers);
    await clients.send({ type: 'open', url: wsUrl, sockets, key: KEY, protocol: 'graphql-ws' }, 'opened');
    const id = await submit(stack);
    await clients.send({ type: 'subscribe', taskId: id, perSocket: subscribers / sockets }, 'ready');
    const before = emulator.stats.gets.get(id) ?? 0;
    const windowMs = INTERVAL_MS * 20;
    await sleep(windowMs);
    const perInterval = ((emulator.stats.gets.get(id) ?? 0) - before) / (windowMs / INTERVAL_MS);
    console.log(`   ${String(subscribers).padStart(11)} | ${perInterval.toFixed(2).padStart(21)} | ${String(subscribers).padStart(36)}`);
    await clients.send({ type: 'close' }, 'closed');
    clients.stop();
  }
  while (gateway.poller.stats().loops > 0) await sleep(10);

  heading('memory');
  const clients = await startClients();
  await clients.send({ type: 'open', url: wsUrl, sockets: SOCKETS, key: KEY, protocol: 'graphql-ws' }, 'opened');
  const id = await submit(stack);
  await sleep(200);
  const baseline = memory();
  await clients.send({ type: 'subscribe', taskId: id, perSocket: 100 }, 'ready');
  await sleep(200);
  const loaded = memory();
  const perSubscription = (loaded - baseline) / 10_000;
  console.log(
    `   10,000 subscriptions on ${SOCKETS} sockets: ${(perSubscription / 1024).toFixed(2)} KiB each (target: at most 12 KiB)${gc ? '' : ' (run with --expose-gc for stable figures)'}`,
  );

  await clients.send({ type: 'close' }, 'closed');
  clients.stop();

  heading('latency');
  const fanout = await startClients();
  await fanout.send({ type: 'open', url: wsUrl, sockets: SOCKETS, key: KEY, protocol: 'graphql-ws' }, 'opened');
  const gatewayRounds: Array<{ last: number; first: number }> = [];
  let sample = '';
  for (let round = 0; round < ROUNDS; round++) {
    const taskId = await submit(stack);
    await fanout.send({ type: 'subscribe', taskId, perSocket: 100 }, 'ready');
    memory();
    const delivered = fanout.send({ type: 'expect', match: 'COMPLETED', count: 10_000 }, 'done');
    emulator.pin(taskId, 'completed', 100);
    const changedAt = wallClock();
    await fetch(emulator.callbackUrlOf(taskId)!, { method: 'POST', body: '{}' });
    const done = await delivered;
    gatewayRounds.push({ last: done.at - changedAt, first: done.firstAt - changedAt });
    sample = done.sample;
  }
  fanout.stop();

  const raw = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(raw, 'listening');
  const rawClients = await startClients();
  await rawClients.send(
    { type: 'open', url: `ws://127.0.0.1:${(raw.address() as { port: number }).port}`, sockets: SOCKETS, key: null, protocol: 'raw' },
    'opened',
  );
  const rawRounds: Array<{ last: number; first: number }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    memory();
    const delivered = rawClients.send({ type: 'expect', match: 'COMPLETED', count: 10_000 }, 'done');
    const sentAt = wallClock();
    for (const socket of raw.clients) for (let i = 0; i < 100; i++) socket.send(sample);
    const done = await delivered;
    rawRounds.push({ last: done.at - sentAt, first: done.firstAt - sentAt });
  }
  rawClients.stop();
  raw.close();
  const gatewayMs = median(gatewayRounds.map((r) => r.last));
  const rawMs = median(rawRounds.map((r) => r.last));
  console.log(
    `   gateway: ${gatewayMs.toFixed(1)} ms to the last, ${median(gatewayRounds.map((r) => r.first)).toFixed(1)} ms to the first (webhook in, one GET, 10,000 graphql-ws messages out)`,
  );
  console.log(
    `   raw ws broadcast of the same ${sample.length} bytes x 10,000: ${rawMs.toFixed(1)} ms to the last, ${median(rawRounds.map((r) => r.first)).toFixed(1)} ms to the first`,
  );
  console.log(`   ratio: ${(gatewayMs / rawMs).toFixed(2)}x (target: at most 1.5x)`);
  console.log(
    `   rounds (gateway / raw, ms): ${gatewayRounds.map((r, i) => `${r.last.toFixed(0)}/${rawRounds[i]!.last.toFixed(0)}`).join(', ')}`,
  );

  await stack.stop();
}

/** Section 5: replicas sharing one loop through Redis. */
async function replicas() {
  // A Redis of its own, so that its command count is this section's alone.
  const redisServer = await startRedisServer(await freePort());
  const redisUrl = redisServer.url;
  const commandsProcessed = async () => {
    const redis = connectRedis(redisUrl);
    const stats = await redis.info('stats');
    redis.disconnect();
    return Number(/total_commands_processed:(\d+)/.exec(stats)?.[1] ?? 0);
  };
  const emulator = await startEmulator({ queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 });
  heading('replicas');
  console.log('   replicas | subscribers | gateway GETs/interval | replicas polling on their own | Redis commands per GET');
  for (const count of [1, 3]) {
    const gateways = await startReplicas(count, {
      redisUrl,
      upstreamUrl: emulator.url,
      env: { POLL_INTERVAL_MS: String(INTERVAL_MS), POLL_MAX_INTERVAL_MS: String(INTERVAL_MS) },
    });
    const response = await fetch(`${gateways[0]!.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ query: SUBMIT }),
    });
    const id = ((await response.json()) as any).data.submitTask.id as string;
    const clients = await Promise.all(gateways.map(() => startClients()));
    await Promise.all(
      clients.map((client, i) =>
        client.send(
          { type: 'open', url: `${gateways[i]!.url.replace('http', 'ws')}/graphql`, sockets: 10, key: KEY, protocol: 'graphql-ws' },
          'opened',
        ),
      ),
    );
    await Promise.all(clients.map((client) => client.send({ type: 'subscribe', taskId: id, perSocket: 100 }, 'ready')));
    const before = emulator.stats.gets.get(id) ?? 0;
    const commandsBefore = await commandsProcessed();
    const windowMs = INTERVAL_MS * 20;
    await sleep(windowMs);
    const gets = (emulator.stats.gets.get(id) ?? 0) - before;
    // INFO itself is one command of each reading.
    const commandsPerGet = ((await commandsProcessed()) - commandsBefore - 1) / gets;
    const perInterval = gets / (windowMs / INTERVAL_MS);
    console.log(
      `   ${String(count).padStart(8)} | ${String(count * 1_000).padStart(11)} | ${perInterval.toFixed(2).padStart(21)} | ${String(count).padStart(29)} | ${commandsPerGet.toFixed(1).padStart(22)}`,
    );
    if (count > 1) {
      // Failover: kill the lease holder and time the gap until another replica polls.
      const redis = connectRedis(redisUrl);
      const holder = await redis.get(`task-gateway:lease:${createHash('sha256').update(KEY).digest('hex')}:${id}`);
      redis.disconnect();
      const victim = gateways.find((gateway) => holder?.includes(`:${gateway.pid}:`));
      if (victim) {
        victim.process.child.kill('SIGKILL');
        const killedAt = performance.now();
        // A request already in flight may still land; the gap is until a survivor's first GET.
        await sleep(50);
        const settled = emulator.stats.gets.get(id) ?? 0;
        while ((emulator.stats.gets.get(id) ?? 0) === settled) await sleep(5);
        console.log(
          `   failover: lease holder killed; a survivor polled ${(performance.now() - killedAt).toFixed(0)} ms later (lease ${3 * INTERVAL_MS} ms)`,
        );
      }
    }
    for (const client of clients) client.stop();
    await Promise.all(gateways.map((gateway) => gateway.process.stop()));
  }
  await emulator.stop();
  await redisServer.kill();
}

/** Starts `command` with the embedded emulator, waits until it listens and has idled 3 s, and returns its RSS in MiB. */
async function idleRssMiB(command: string, args: string[]): Promise<number> {
  const child = spawn(command, args, {
    cwd: new URL('..', import.meta.url).pathname,
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  while (!output.includes('GraphiQL at')) {
    if (child.exitCode !== null) throw new Error(`${command} ${args.join(' ')} exited:\n${output}`);
    await sleep(50);
  }
  await sleep(3_000);
  // `sh scripts/start.sh` execs node: the pid is the gateway's own.
  const rssKiB = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
  child.kill('SIGTERM');
  await once(child, 'exit');
  return rssKiB / 1024;
}

async function idle() {
  heading('idle');
  const built = await idleRssMiB('sh', ['scripts/start.sh']);
  const transpiled = await idleRssMiB(process.execPath, ['--import', 'tsx', 'src/main.ts']);
  console.log(
    `   npm start (node dist/main.js): ${built.toFixed(1)} MiB (target <= 120); baseline, tsx src/main.ts: ${transpiled.toFixed(1)} MiB`,
  );
}

// Stopped with Ctrl-C or a signal: exit, so that the exit handlers stop the processes this bench started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const only = process.argv[2];
console.log(`task-gateway benchmark (Node ${process.version}, ${SOCKETS} sockets at most, poll interval ${INTERVAL_MS} ms)`);
if (!only || only === 'fanout') await fanout();
if (!only || only === 'soak') await soak();
if (!only || only === 'replicas') await replicas();
if (!only || only === 'dashboard') await dashboard((detail) => heading('dashboard', detail));
if (!only || only === 'idle') await idle();
if (!only || only === 'performance') await runPerformance(() => heading('performance'), process.argv[3]);
if (!only || only === 'quota') {
  // `-- quota budget`: the budget under a quota alone; `-- quota latency`: the latency section alone.
  const part = process.argv[3];
  if (part !== 'latency') {
    const wanted = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const redisServer = (await redisAnswers(wanted)) ? null : await startRedisServer(await freePort());
    await quota(redisServer?.url ?? wanted, (detail) => heading('quota', detail));
    await redisServer?.kill();
  }
  if (part !== 'budget') await quotaLatency((detail) => heading('quota', detail), Number(process.argv[4]) || undefined);
}
if (!only || only === 'tracing') await tracing(() => heading('tracing'), process.argv[3]);
if (!only || only === 'auth') await auth(() => heading('auth'), process.argv[3]);
// Whatever a section left running (a child, a server, a Redis client) goes now.
await disposeLeftovers('file');
process.exit(0);
