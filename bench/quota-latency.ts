/**
 * The latency section of `npm run bench -- quota`: one key serving a whole app
 * against an upstream 100 ms away (the emulator behind a TCP proxy that holds
 * every answer 100 ms). N tasks of one key, one `taskUpdated` watcher each,
 * poll interval 2 s, with nothing configured and with a configured rate; beside
 * them a second key asks `task(id)` 10 times a second, and its latency is
 * printed against the same key's latency alone, in the same gateway just before.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createEmulator } from '../src/emulator/emulator.ts';
import { startDelayProxy } from '../test/helpers/delay-proxy.ts';
import { startClients } from './clients-process.ts';
import { createTasks, startGateway } from './quota.ts';

const LATENCY_MS = 100;
const INTERVAL_MS = 2_000;
/** Rounds of reads (N GETs each) the steady rate is measured over, and the longest it may take, ms. */
const STEADY_ROUNDS = 5;
const STEADY_MS = 30_000;
/** The second key's queries per second, and how long its latency is measured alone. */
const OTHER_RATE = 10;
const ALONE_MS = 3_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/** Asks `task(id)` of `id` with `key` OTHER_RATE times a second until `stop` aborts; returns each latency, ms. */
async function queryEvery(gatewayUrl: string, key: string, id: string, stop: AbortSignal): Promise<number[]> {
  const latencies: number[] = [];
  const asked: Array<Promise<void>> = [];
  while (!stop.aborted) {
    const started = performance.now();
    asked.push(
      fetch(`${gatewayUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ query: `query($id: ID!) { task(id: $id) { __typename } }`, variables: { id } }),
      })
        .then((response) => response.text())
        .then(() => {
          latencies.push(performance.now() - started);
        }),
    );
    await sleep(1_000 / OTHER_RATE);
  }
  await Promise.all(asked);
  return latencies;
}

interface Figures {
  getsPerSec: number;
  /** The key's concurrency limit, pace and latency, from the gateway's metrics at the end of the steady state. */
  perKey: string;
  firstStatesS: number;
  lastSawEndS: number;
  otherAloneMs: number;
  otherBesideMs: number;
}

async function measure(tasks: number, rate: number | null): Promise<Figures> {
  const emulator = createEmulator({ queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 });
  const emulatorUrl = await emulator.start();
  const key = `sk-latency-${process.pid}-${Date.now()}`;
  const otherKey = `${key}-other`;
  const ids = await createTasks(emulator, key, tasks);
  const [otherId] = await createTasks(emulator, otherKey, 1);
  const proxy = await startDelayProxy({ targetPort: Number(new URL(emulatorUrl).port), backMs: LATENCY_MS });
  // One key watches every task, as one server-held key serving a whole app does.
  const env: Record<string, string> = {
    POLL_INTERVAL_MS: String(INTERVAL_MS),
    POLL_MAX_INTERVAL_MS: String(INTERVAL_MS),
    MAX_LOOPS_PER_KEY: String(tasks),
  };
  if (rate !== null) env.UPSTREAM_RATE_LIMIT_PER_KEY = String(rate);
  const gateway: { child: ChildProcess; url: string } = await startGateway(`http://${proxy.host}/v1`, null, env);

  let stop = new AbortController();
  const alone = queryEvery(gateway.url, otherKey, otherId!, stop.signal);
  await sleep(ALONE_MS);
  stop.abort();
  const otherAloneMs = median(await alone);

  const clients = await startClients();
  await clients.send(
    { type: 'open', url: `${gateway.url.replace('http', 'ws')}/graphql`, sockets: tasks / 10, key, protocol: 'graphql-ws' },
    'opened',
  );
  stop = new AbortController();
  const beside = queryEvery(gateway.url, otherKey, otherId!, stop.signal);
  const started = performance.now();
  await clients.send({ type: 'hold', perSocket: 10, taskIds: ids }, 'held');
  const firstStatesS = (performance.now() - started) / 1000;

  const gets = () => ids.reduce((sum, id) => sum + (emulator.stats.gets.get(id) ?? 0), 0);
  // Counted in rounds, not in a fixed window: loops that start together poll in step (a burst of N every
  // interval and a bit), and a window of fixed length holds four or five bursts as it falls. From the end of
  // the first round, the time until every task was read `STEADY_ROUNDS` more times (at most `STEADY_MS`).
  const before = gets();
  const steadyFrom = performance.now();
  while (gets() - before < STEADY_ROUNDS * tasks && performance.now() - steadyFrom < STEADY_MS) await sleep(20);
  const getsPerSec = (gets() - before) / ((performance.now() - steadyFrom) / 1000);
  const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
  const sample = (name: string) =>
    /[^\n]*/
      .exec(metrics.slice(metrics.indexOf(`${name}{`)))![0]
      .split(' ')
      .at(-1);
  const perKey = `limit ${sample('task_gateway_upstream_key_concurrency_limit')}, pace ${Number(sample('task_gateway_upstream_key_rate_per_second')).toFixed(0)}/s, latency ${(1000 * Number(sample('task_gateway_upstream_key_latency_seconds'))).toFixed(0)} ms`;
  stop.abort();
  const otherBesideMs = median(await beside);

  const seen = clients.send({ type: 'expect', match: 'COMPLETED', count: tasks }, 'done');
  const endedAt = performance.now();
  for (const id of ids) emulator.pin(id, 'completed', 100);
  await seen;
  const lastSawEndS = (performance.now() - endedAt) / 1000;

  clients.stop();
  gateway.child.kill('SIGTERM');
  if (gateway.child.exitCode === null) await once(gateway.child, 'exit');
  await proxy.stop();
  await emulator.stop();
  return { getsPerSec, perKey, firstStatesS, lastSawEndS, otherAloneMs, otherBesideMs };
}

/** Prints the latency section: 1,000 and 5,000 tasks, with nothing configured and with `UPSTREAM_RATE_LIMIT_PER_KEY`. */
export async function quotaLatency(heading: (detail: string) => void, only?: number): Promise<void> {
  heading(`: one key, upstream answering ${LATENCY_MS} ms late, one watcher per task, interval ${INTERVAL_MS / 1000} s`);
  console.log(
    '   targets: GETs/s >= 90 % of N / interval; first states <= 5 s (1,000, nothing configured); last watcher saw the end <= interval + 2 s;',
  );
  console.log("   a second key's task(id) (10/s) within 1.2x its latency alone (median, ms, same gateway just before)");
  console.log(
    '   before (main, issue 19): 1,000 tasks, rate 100000: 76 GETs/s, first states 14 s, end seen 13 s; nothing configured: 74 GETs/s, 18 s',
  );
  console.log(
    '   tasks | UPSTREAM_RATE_LIMIT_PER_KEY | GETs/s (of N/interval) | all first states | last saw the end | other key alone / beside',
  );
  for (const tasks of only ? [only] : [1_000, 5_000]) {
    for (const rate of [null, 100_000]) {
      const f = await measure(tasks, rate);
      const share = (100 * f.getsPerSec) / (tasks / (INTERVAL_MS / 1000));
      console.log(
        `   ${tasks.toLocaleString('en').padStart(5)} | ${String(rate ?? 'unset').padStart(27)} | ${`${f.getsPerSec.toFixed(0)} (${share.toFixed(0)} %)`.padStart(22)} | ${`${f.firstStatesS.toFixed(1)} s`.padStart(16)} | ${`${f.lastSawEndS.toFixed(1)} s`.padStart(16)} | ${f.otherAloneMs.toFixed(0)} / ${f.otherBesideMs.toFixed(0)} ms (${(f.otherBesideMs / f.otherAloneMs).toFixed(2)}x)`,
      );
      console.log(`           the key at the end of the steady state: ${f.perKey}`);
    }
  }
}
