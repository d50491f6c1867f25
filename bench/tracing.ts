/**
 * `npm run bench -- tracing`: what OpenTelemetry tracing at 100 % sampling costs,
 * beside the same build with tracing off, in the same run: `task(id)` of a
 * finished task over HTTP (alternating runs), and CPU per upstream poll with
 * both gateways polling the same tasks over the same windows. The spans go to
 * a local OTLP/HTTP receiver that counts and discards them.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Child, forkChild, gatewayGets, INTERVAL_MS, startGatewayProcess, startWatchers, submitTasks, usage } from './performance.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const POLLED_TASKS = 2_000;

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
  OTEL_TRACES_SAMPLER: 'always_on',
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

async function pollCost(upstreamUrl: string, endpoint: string) {
  const keys = Array.from({ length: 4 }, (_, i) => `sk-tracing-${i}`);
  const tasks = await Promise.all(keys.map(async (key) => ({ key, ids: await submitTasks(upstreamUrl, key, POLLED_TASKS / keys.length) })));
  const budget = { UPSTREAM_RATE_LIMIT_PER_KEY: '1000' };
  const off = await startGatewayProcess(upstreamUrl, budget);
  const on = await startGatewayProcess(upstreamUrl, { ...budget, ...tracingOn(endpoint) });
  const groups = tasks.map(({ key, ids }) => ({ key, sockets: 2, ids, perTask: 1 }));
  const watchers = [await startWatchers(off.url, groups), await startWatchers(on.url, groups)];
  await sleep(2 * INTERVAL_MS);
  const rounds: Array<{ on: number; off: number }> = [];
  for (let round = 0; round < 3; round++) {
    const before = {
      on: usage(on.pid).cpuMs,
      off: usage(off.pid).cpuMs,
      onGets: await gatewayGets(on.url),
      offGets: await gatewayGets(off.url),
    };
    await sleep(4 * INTERVAL_MS);
    rounds.push({
      on: ((usage(on.pid).cpuMs - before.on) * 1000) / ((await gatewayGets(on.url)) - before.onGets),
      off: ((usage(off.pid).cpuMs - before.off) * 1000) / ((await gatewayGets(off.url)) - before.offGets),
    });
  }
  for (const watcher of watchers) await watcher.stop();
  await Promise.all([off.stop(), on.stop()]);
  const ratios = rounds.map((r) => r.on / r.off);
  console.log(
    `\nCPU per upstream poll: ${POLLED_TASKS.toLocaleString('en')} tasks with one watcher each, interval ${INTERVAL_MS / 1000} s, both gateways over the same three 8 s windows`,
  );
  console.log(
    `   tracing on, 100 % sampled (a root span and a client span per poll): ${median(rounds.map((r) => r.on)).toFixed(0)} µs per GET`,
  );
  console.log(`   same build, tracing off: ${median(rounds.map((r) => r.off)).toFixed(0)} µs per GET`);
  console.log(
    `   ratio: ${median(ratios).toFixed(2)}x median (windows: ${ratios.map((r) => r.toFixed(2)).join(', ')}; target: at most 1.2x)`,
  );
}

/** Runs both measures against the bench's emulator process, printing under `heading`. */
export async function tracing(heading: () => void): Promise<void> {
  const receiver = await startNullReceiver();
  const upstream = forkChild('./perf-upstream.ts');
  const { url } = await upstream.next<{ url: string }>('started');
  heading();
  await httpPath(upstream, url, receiver.url);
  await pollCost(url, receiver.url);
  const { exports, bytes } = receiver.received();
  // A stale dist/ without tracing would export nothing: the figures above would compare two untraced gateways.
  console.log(`   spans exported to the receiver: ${exports} OTLP requests, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
  await upstream.stop();
  await receiver.close();
}
