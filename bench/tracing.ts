/**
 * `npm run bench -- tracing`: what OpenTelemetry tracing at 100 % sampling costs,
 * beside the same build with tracing off, in the same run: `task(id)` of a
 * finished task over HTTP (alternating runs), and CPU per upstream poll with
 * the gateways (off twice, 100 % sampled, 10 % sampled) polling the same tasks
 * over the same windows. The spans go to
 * a local OTLP/HTTP receiver that counts and discards them.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Child, forkChild, gatewayGets, INTERVAL_MS, startGatewayProcess, startWatchers, submitTasks, usage } from './performance.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
/** Per gateway: four gateways make 3,000 GETs a second, as three of 2,000 did. */
const POLLED_TASKS = 1_500;
/** Windows of 8 s: the ratio of one window spreads by about ±0.1 on a shared 2-core machine (a major GC lands in one, not another). */
const WINDOWS_PER_ROUND = 4;
const ROUNDS = 2;

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

/**
 * CPU per poll of four gateways polling the same tasks over the same windows: two untraced (the
 * baseline is their mean, and their ratio to each other is the noise floor), 100 % sampled and 10 %
 * sampled. Two processes of the same build differ by up to about 10 % in CPU per poll (start order,
 * JIT, memory layout), so the gateways are started afresh for each round, in a rotated order.
 */
async function pollCost(upstreamUrl: string, endpoint: string) {
  const keys = Array.from({ length: 4 }, (_, i) => `sk-tracing-${i}`);
  const tasks = await Promise.all(keys.map(async (key) => ({ key, ids: await submitTasks(upstreamUrl, key, POLLED_TASKS / keys.length) })));
  const budget = { UPSTREAM_RATE_LIMIT_PER_KEY: '1000' };
  const setups = [
    { label: 'same build, tracing off', env: budget },
    { label: 'a second untraced gateway (noise floor)', env: budget },
    { label: 'tracing on, 100 % sampled (one root client span per poll)', env: { ...budget, ...sampledAt(endpoint, 1) } },
    { label: 'tracing on, polls sampled at 10 % (parentbased_traceidratio 0.1)', env: { ...budget, ...sampledAt(endpoint, 0.1) } },
  ];
  // 100 subscriptions per socket: MAX_SUBSCRIPTIONS_PER_CONNECTION's default (more would be refused, and never prime).
  const groups = tasks.map(({ key, ids }) => ({ key, sockets: Math.ceil(ids.length / 100), ids, perTask: 1 }));
  // Per window, each setup's CPU µs per GET it had answered.
  const windows: number[][] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = setups.map((_, i) => (i + round * 2) % setups.length);
    const gateways: Array<Awaited<ReturnType<typeof startGatewayProcess>>> = [];
    for (const i of order) gateways[i] = await startGatewayProcess(upstreamUrl, setups[i]!.env);
    const watchers = [];
    for (const i of order) watchers.push(await startWatchers(gateways[i]!.url, groups));
    await sleep(2 * INTERVAL_MS);
    for (let window = 0; window < WINDOWS_PER_ROUND; window++) {
      const before = await Promise.all(gateways.map(async (g) => ({ cpu: usage(g.pid).cpuMs, gets: await gatewayGets(g.url) })));
      await sleep(4 * INTERVAL_MS);
      windows.push(
        await Promise.all(
          gateways.map(async (g, i) => ((usage(g.pid).cpuMs - before[i]!.cpu) * 1000) / ((await gatewayGets(g.url)) - before[i]!.gets)),
        ),
      );
    }
    for (const watcher of watchers) await watcher.stop();
    await Promise.all(gateways.map((g) => g.stop()));
  }
  console.log(
    `\nCPU per upstream poll: ${POLLED_TASKS.toLocaleString('en')} tasks with one watcher each, interval ${INTERVAL_MS / 1000} s, four gateways over the same windows (${ROUNDS} rounds of fresh processes, ${WINDOWS_PER_ROUND} windows of 8 s each)`,
  );
  const baseline = windows.map((w) => (w[0]! + w[1]!) / 2);
  console.log(`   ${setups[0]!.label}: ${median(baseline).toFixed(0)} µs per GET (the mean of two untraced gateways)`);
  setups.slice(1).forEach(({ label }, n) => {
    const i = n + 1;
    // The control is measured against the other untraced gateway, the traced ones against both.
    const ratios = windows.map((w, k) => w[i]! / (i === 1 ? w[0]! : baseline[k]!));
    console.log(`   ${label}: ${median(windows.map((w) => w[i]!)).toFixed(0)} µs per GET`);
    console.log(
      `      ratio: ${median(ratios).toFixed(2)}x median (windows: ${ratios.map((r) => r.toFixed(2)).join(', ')}${i === 1 ? '' : '; target: at most 1.2x'})`,
    );
  });
}

/**
 * One poll's span with nothing else in the process: what the SDK's recording, batching, encoding and
 * export cost on their own, beside the same loop untraced. In a gateway the same span costs more:
 * its allocations meet the gateway's garbage and its code the gateway's caches.
 */
async function spanCost(endpoint: string) {
  const spans = 60_000;
  const run = async (traced: boolean) => {
    const child = forkChild('./span-cost.ts', traced ? tracingOn(endpoint) : {});
    const { cpuUsPerSpan } = await child.ask<{ cpuUsPerSpan: number }>({ type: 'run', traced, spans }, 'result');
    await child.stop();
    return cpuUsPerSpan;
  };
  const off = await run(false);
  const on = await run(true);
  const batch = 512; // OTEL_BSP_MAX_EXPORT_BATCH_SIZE's default: what one export request carries
  const encode = async (stringPrototype: 'restored' | 'dictionary') => {
    const encoder = forkChild('./span-cost.ts');
    const { cpuUsPerSpan } = await encoder.ask<{ cpuUsPerSpan: number }>(
      { type: 'encode', batch, batches: 400, stringPrototype },
      'encoded',
    );
    await encoder.stop();
    return cpuUsPerSpan;
  };
  const encoding = await encode('restored');
  const dictionary = await encode('dictionary');
  console.log(`\nOne poll's span alone in a process (${spans.toLocaleString('en')} spans at 1,000 a second, exported to the receiver)`);
  console.log(`   the loop, tracing off: ${off.toFixed(1)} µs per iteration`);
  console.log(`   the loop with a recorded span: ${on.toFixed(1)} µs per iteration: ${(on - off).toFixed(1)} µs per span`);
  console.log(
    `   of which the SDK's OTLP/protobuf serializer, on the same spans ${batch} to a request, in a warm loop: ${encoding.toFixed(1)} µs per span (${((encoding / (on - off)) * 100).toFixed(0)} %)`,
  );
  console.log(
    `   the same serializer with String.prototype left a dictionary, as importing ioredis leaves it (src/lib/string-prototype.ts): ${dictionary.toFixed(1)} µs per span (${(dictionary / encoding).toFixed(1)}x)`,
  );
}

/** Runs the measures against the bench's emulator process, printing under `heading`. */
export async function tracing(heading: () => void, part?: string): Promise<void> {
  const receiver = await startNullReceiver();
  const upstream = forkChild('./perf-upstream.ts');
  const { url } = await upstream.next<{ url: string }>('started');
  heading();
  if (part === undefined || part === 'http') await httpPath(upstream, url, receiver.url);
  if (part === undefined || part === 'polls') await pollCost(url, receiver.url);
  if (part === undefined || part === 'span') await spanCost(receiver.url);
  const { exports, bytes } = receiver.received();
  // A stale dist/ without tracing would export nothing: the figures above would compare two untraced gateways.
  console.log(`   spans exported to the receiver: ${exports} OTLP requests, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
  await upstream.stop();
  await receiver.close();
}
