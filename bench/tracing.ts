/**
 * `npm run bench -- tracing`: what OpenTelemetry tracing at 100 % sampling costs,
 * beside the same build with tracing off, in the same run: `task(id)` of a
 * finished task over HTTP (alternating runs), and CPU per upstream poll with
 * the gateways (off, 100 % sampled, 10 % sampled) polling the same tasks over
 * the same windows. The spans go to
 * a local OTLP/HTTP receiver that counts and discards them.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Child, forkChild, gatewayGets, INTERVAL_MS, startGatewayProcess, startWatchers, submitTasks, usage } from './performance.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const POLLED_TASKS = 2_000;
/** Windows of 8 s: the ratio of one window spreads by about ±0.1 on a shared 2-core machine (a major GC lands in one, not another). */
const WINDOWS = 5;

/** An OTLP/HTTP receiver that answers every export at once and only counts its bytes. */
async function startNullReceiver() {
  let exports = 0;
  let bytes = 0;
  const server = createServer((request, response) => {
    exports += 1;
    request.on('data', (chunk: Buffer) => (bytes += chunk.length));
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => ({ exports, bytes }),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

const tracingOn = (endpoint: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
  // BENCH_TRACES_SAMPLER=always_off separates the SDK's standing cost (context propagation) from the spans'.
  OTEL_TRACES_SAMPLER: process.env.BENCH_TRACES_SAMPLER ?? 'always_on',
  OTEL_BSP_MAX_QUEUE_SIZE: '65536',
});

async function httpPath(upstream: Child, upstreamUrl: string, endpoint: string) {
  const key = 'sk-tracing-http';
  const ids = await submitTasks(upstreamUrl, key, 1);
  await upstream.ask({ type: 'complete', ids }, 'completed');
  const off = await startGatewayProcess(upstreamUrl);
  const on = await startGatewayProcess(upstreamUrl, tracingOn(endpoint));
  const body = JSON.stringify({
    query: 'query Task($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status } } }',
    variables: { id: ids[0] },
  });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
  const load = forkChild('./http-load.ts');
  const run = (url: string) =>
    load.ask<{ perSecond: number; failed: number }>(
      { type: 'run', url: `${url}/graphql`, body, headers, connections: 50, warmupSeconds: 2, seconds: 8 },
      'result',
    );
  const offRuns: number[] = [];
  const onRuns: number[] = [];
  for (let round = 0; round < 2; round++) {
    offRuns.push((await run(off.url)).perSecond);
    onRuns.push((await run(on.url)).perSecond);
  }
  await load.stop();
  await Promise.all([off.stop(), on.stop()]);
  const best = (values: number[]) => Math.max(...values);
  console.log(`\ntask(id) of a finished task over HTTP, 50 connections (best of 2 runs of 8 s, alternating)`);
  console.log(`   tracing on, 100 % sampled: ${best(onRuns).toFixed(0)} req/s (runs: ${onRuns.map((r) => r.toFixed(0)).join(', ')})`);
  console.log(`   same build, tracing off: ${best(offRuns).toFixed(0)} req/s (runs: ${offRuns.map((r) => r.toFixed(0)).join(', ')})`);
  console.log(`   ratio: ${(best(onRuns) / best(offRuns)).toFixed(2)}x (target: at least 0.8x)`);
}

/** A traced gateway's settings: 100 % sampled, or polls (roots) sampled at `ratio` as a production setup would. */
const sampledAt = (endpoint: string, ratio: number) =>
  ratio === 1
    ? tracingOn(endpoint)
    : { ...tracingOn(endpoint), OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(ratio) };

async function pollCost(upstreamUrl: string, endpoint: string) {
  const keys = Array.from({ length: 4 }, (_, i) => `sk-tracing-${i}`);
  const tasks = await Promise.all(keys.map(async (key) => ({ key, ids: await submitTasks(upstreamUrl, key, POLLED_TASKS / keys.length) })));
  const budget = { UPSTREAM_RATE_LIMIT_PER_KEY: '1000' };
  const off = await startGatewayProcess(upstreamUrl, budget);
  const traced = [
    { label: 'tracing on, 100 % sampled (one root client span per poll)', ratio: 1 },
    { label: 'tracing on, polls sampled at 10 % (parentbased_traceidratio 0.1)', ratio: 0.1 },
  ];
  const on = await Promise.all(traced.map(({ ratio }) => startGatewayProcess(upstreamUrl, { ...budget, ...sampledAt(endpoint, ratio) })));
  const gateways = [off, ...on];
  // 100 subscriptions per socket: MAX_SUBSCRIPTIONS_PER_CONNECTION's default (more would be refused, and never prime).
  const groups = tasks.map(({ key, ids }) => ({ key, sockets: Math.ceil(ids.length / 100), ids, perTask: 1 }));
  const watchers = [];
  for (const gateway of gateways) watchers.push(await startWatchers(gateway.url, groups));
  await sleep(2 * INTERVAL_MS);
  // Per window, each gateway's CPU µs per GET it had answered; every gateway over the same windows.
  const rounds: number[][] = [];
  for (let round = 0; round < WINDOWS; round++) {
    const before = await Promise.all(gateways.map(async (g) => ({ cpu: usage(g.pid).cpuMs, gets: await gatewayGets(g.url) })));
    await sleep(4 * INTERVAL_MS);
    rounds.push(
      await Promise.all(
        gateways.map(async (g, i) => ((usage(g.pid).cpuMs - before[i]!.cpu) * 1000) / ((await gatewayGets(g.url)) - before[i]!.gets)),
      ),
    );
  }
  for (const watcher of watchers) await watcher.stop();
  await Promise.all(gateways.map((g) => g.stop()));
  console.log(
    `\nCPU per upstream poll: ${POLLED_TASKS.toLocaleString('en')} tasks with one watcher each, interval ${INTERVAL_MS / 1000} s, three gateways over the same ${WINDOWS} windows of 8 s`,
  );
  console.log(`   same build, tracing off: ${median(rounds.map((r) => r[0]!)).toFixed(0)} µs per GET`);
  traced.forEach(({ label }, i) => {
    const ratios = rounds.map((r) => r[i + 1]! / r[0]!);
    console.log(`   ${label}: ${median(rounds.map((r) => r[i + 1]!)).toFixed(0)} µs per GET`);
    console.log(
      `      ratio: ${median(ratios).toFixed(2)}x median (windows: ${ratios.map((r) => r.toFixed(2)).join(', ')}; target: at most 1.2x)`,
    );
  });
}

/** Runs both measures against the bench's emulator process, printing under `heading`. */
export async function tracing(heading: () => void, part?: string): Promise<void> {
  const receiver = await startNullReceiver();
  const upstream = forkChild('./perf-upstream.ts');
  const { url } = await upstream.next<{ url: string }>('started');
  heading();
  if (part !== 'polls') await httpPath(upstream, url, receiver.url);
  if (part !== 'http') await pollCost(url, receiver.url);
  const { exports, bytes } = receiver.received();
  // A stale dist/ without tracing would export nothing: the figures above would compare two untraced gateways.
  console.log(`   spans exported to the receiver: ${exports} OTLP requests, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
  await upstream.stop();
  await receiver.close();
}
