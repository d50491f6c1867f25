/**
 * `npm run bench -- performance`: what each unit of work costs the gateway,
 * beside what the bare libraries cost for the same job, measured in the same
 * run (ratios, not absolute times: the machine is shared and noisy). The
 * gateway, the emulator, the watchers, the load and each baseline run in
 * processes of their own, so that each is measured alone (CPU and RSS from /proc).
 *
 * For a closer look at the gateway under this load: GATEWAY_NODE_ARGS (and BARE_NODE_ARGS for the
 * bare loop) are passed to node, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' or '--trace-gc-nvp'
 * (the gateway's stdout is then shown); BENCH_HOLD=<s> keeps the per-poll load running that long
 * before measuring, to attach an inspector (GATEWAY_NODE_ARGS='--inspect=127.0.0.1:9230').
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { freePort } from '../test/helpers/stack.ts';

export const INTERVAL_MS = 2_000;
const here = (file: string) => new URL(file, import.meta.url).pathname;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const wallClock = () => performance.timeOrigin + performance.now();
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const CLOCK_TICK_MS = 10; // Linux's USER_HZ is 100

export interface Child {
  process: ChildProcess;
  ask<T = any>(command: Record<string, unknown>, answer: string): Promise<T>;
  next<T = any>(answer: string): Promise<T>;
  stop(): Promise<void>;
}

/** Forks a TypeScript module of this repo (through tsx), talking over IPC. */
export function forkChild(file: string, env: Record<string, string> = {}): Child {
  const extra = file === './bare-poller.ts' ? (process.env.BARE_NODE_ARGS?.split(' ').filter(Boolean) ?? []) : [];
  const child = fork(here(file), [], {
    execArgv: ['--import', 'tsx', '--max-old-space-size=4096', ...extra],
    env: { ...process.env, ...env },
  });
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  // A child that exits before it answers fails the bench rather than leaving it waiting forever.
  const next = <T>(answer: string) =>
    new Promise<T>((resolve, reject) => {
      const listener = (message: any) => {
        if (message?.type !== answer) return;
        child.off('message', listener);
        child.off('exit', exited);
        resolve(message);
      };
      const exited = (code: number | null) => {
        child.off('message', listener);
        reject(new Error(`${file} exited (${code}) before it answered ${answer}`));
      };
      child.on('message', listener);
      child.once('exit', exited);
    });
  return {
    process: child,
    next,
    ask(command, answer) {
      const reply = next<any>(answer);
      child.send(command);
      return reply;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** CPU time (user + system) and resident memory of a process, from /proc. */
export function usage(pid: number): { cpuMs: number; rss: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  return { cpuMs: (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS, rss };
}

/** The gateway as an operator runs it: `node dist/main.js` when built, else the sources through tsx. */
export async function startGatewayProcess(upstreamUrl: string, env: Record<string, string> = {}) {
  const port = await freePort();
  const built = existsSync(here('../dist/main.js'));
  const child = fork(built ? here('../dist/main.js') : here('../src/main.ts'), [], {
    // For profiling the gateway under the bench's load, e.g. GATEWAY_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
    execArgv: [...(built ? [] : ['--import', 'tsx']), ...(process.env.GATEWAY_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      UPSTREAM_URL: upstreamUrl,
      POLL_INTERVAL_MS: String(INTERVAL_MS),
      POLL_MAX_INTERVAL_MS: String(INTERVAL_MS),
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', process.env.GATEWAY_NODE_ARGS ? 'inherit' : 'ignore', 'inherit', 'ipc'],
  });
  // The gateway does not watch its IPC channel: the bench stops it when it exits, however it exits.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode} before it answered`);
    const ok = await fetch(`${url}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) break;
    await sleep(50);
  }
  await sleep(500);
  return {
    url,
    built,
    pid: child.pid!,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      process.off('exit', killOnExit);
    },
  };
}

export async function submitTasks(upstreamUrl: string, key: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < count; start += 50) {
    const batch = Array.from({ length: Math.min(50, count - start) }, async () => {
      // Once more when a kept-alive connection closed under the request: the submit never reached the emulator.
      for (let attempt = 1; ; attempt++) {
        try {
          const response = await fetch(`${upstreamUrl}/tasks`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify({ model: 'veo3.1-fast', prompt: 'bench' }),
          });
          return ((await response.json()) as { task_id: string }).task_id;
        } catch (error) {
          if (attempt >= 3) throw error;
        }
      }
    });
    ids.push(...(await Promise.all(batch)));
  }
  return ids;
}

/** Watchers in their own process, subscribed as `groups` says; resolves once every one has its first state. */
export async function startWatchers(gatewayUrl: string, groups: Array<{ key: string; sockets: number; ids: string[]; perTask: number }>) {
  const clients = forkChild('./perf-clients.ts');
  const primed = clients.next('primed');
  clients.process.send({ type: 'watch', url: `${gatewayUrl.replace('http', 'ws')}/graphql`, groups });
  await primed;
  return clients;
}

/** GETs the gateway has had answered, from its /metrics. */
export async function gatewayGets(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/task_gateway_upstream_requests_total\{endpoint="get",outcome="ok"\} (\d+)/.exec(text)?.[1] ?? 0);
}

async function pollCost(upstreamUrl: string) {
  const keys = Array.from({ length: 10 }, (_, i) => `sk-perf-${i}`);
  const tasks = await Promise.all(keys.map(async (key) => ({ key, ids: await submitTasks(upstreamUrl, key, 500) })));
  // The emulator here has no quota: a configured budget well above the need, so that the pace is the poll interval's.
  const gateway = await startGatewayProcess(upstreamUrl, { UPSTREAM_RATE_LIMIT_PER_KEY: '1000' });
  const idle = usage(gateway.pid).rss;
  const clients = await startWatchers(
    gateway.url,
    tasks.map(({ key, ids }) => ({ key, sockets: 5, ids, perTask: 1 })),
  );
  // The baseline polls the same tasks at the same time: both are measured over the same windows, so that
  // whatever else the machine does weighs on both alike.
  const bare = forkChild('./bare-poller.ts');
  for (const { key, ids } of tasks) await bare.ask({ type: 'start', url: upstreamUrl, key, ids, intervalMs: INTERVAL_MS }, 'started');
  await sleep(2 * INTERVAL_MS);
  if (process.env.BENCH_HOLD) {
    console.log('HOLD', gateway.pid);
    await sleep(Number(process.env.BENCH_HOLD) * 1000);
  }
  const rounds: Array<{ gateway: number; bare: number; gatewayRate: number; bareRate: number }> = [];
  let rss = 0;
  for (let round = 0; round < 3; round++) {
    const before = { gateway: usage(gateway.pid), bare: usage(bare.process.pid!) };
    const gets = { gateway: await gatewayGets(gateway.url), bare: (await bare.ask({ type: 'count' }, 'count')).parsed as number };
    await sleep(4 * INTERVAL_MS);
    const after = { gateway: usage(gateway.pid), bare: usage(bare.process.pid!) };
    const gatewayGot = (await gatewayGets(gateway.url)) - gets.gateway;
    const bareGot = ((await bare.ask({ type: 'count' }, 'count')).parsed as number) - gets.bare;
    rounds.push({
      gateway: ((after.gateway.cpuMs - before.gateway.cpuMs) * 1000) / gatewayGot,
      bare: ((after.bare.cpuMs - before.bare.cpuMs) * 1000) / bareGot,
      gatewayRate: gatewayGot / ((4 * INTERVAL_MS) / 1000),
      bareRate: bareGot / ((4 * INTERVAL_MS) / 1000),
    });
    rss = Math.max(rss, after.gateway.rss);
  }
  await bare.stop();
  await clients.stop();
  await gateway.stop();

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const ratios = rounds.map((r) => r.gateway / r.bare);
  const show = (values: number[]) => values.map((v) => v.toFixed(0)).join(', ');
  console.log(`\nCPU per upstream poll: 5,000 tasks (10 keys) with one taskUpdated watcher each, interval ${INTERVAL_MS / 1000} s`);
  console.log('   (the bare loop polls the same 5,000 tasks beside the gateway; three windows of 8 s)');
  console.log(
    `   gateway: ${median(rounds.map((r) => r.gateway)).toFixed(0)} µs per GET (windows: ${show(rounds.map((r) => r.gateway))}; ${median(rounds.map((r) => r.gatewayRate)).toFixed(0)} GETs/s)`,
  );
  console.log(
    `   bare undici loop, GET + JSON.parse: ${median(rounds.map((r) => r.bare)).toFixed(0)} µs per GET (windows: ${show(rounds.map((r) => r.bare))}; ${median(rounds.map((r) => r.bareRate)).toFixed(0)} GETs/s)`,
  );
  console.log(
    `   ratio: ${median(ratios).toFixed(2)}x median (windows: ${ratios.map((r) => r.toFixed(2)).join(', ')}; target: at most 1.5x)`,
  );
  console.log(`RSS per watched task (one loop + one subscriber), 5,000 tasks`);
  console.log(`   ${kib((rss - idle) / 5_000)} each (gateway ${mib(idle)} idle, ${mib(rss)} at most watching; target: at most 16 KiB)`);
}

async function manyWatchers(upstream: Child, upstreamUrl: string) {
  const key = 'sk-perf-many';
  const ids = await submitTasks(upstreamUrl, key, 1_000);
  // No quota at this emulator: a configured budget above the need, so that the pace is the poll interval's.
  const gateway = await startGatewayProcess(upstreamUrl, { MAX_SUBSCRIPTIONS_PER_CONNECTION: '100', UPSTREAM_RATE_LIMIT_PER_KEY: '1000' });
  const idle = usage(gateway.pid).rss;
  const clients = await startWatchers(gateway.url, [{ key, sockets: 1_000, ids, perTask: 100 }]);
  await sleep(1_000);
  const held = usage(gateway.pid).rss;
  const finished = clients.next<{ at: number }>('finished');
  const completedAt = wallClock();
  await upstream.ask({ type: 'complete', ids }, 'completed');
  const lastAt = (await finished).at;
  await clients.stop();
  await gateway.stop();

  const bare = forkChild('./bare-ws.ts');
  const { url } = await bare.next<{ url: string }>('started');
  const bareIdle = usage(bare.process.pid!).rss;
  const rawClients = forkChild('./perf-clients.ts');
  await rawClients.ask({ type: 'open-raw', url, sockets: 1_000 }, 'opened');
  await sleep(500);
  const bareHeld = usage(bare.process.pid!).rss;
  await rawClients.stop();
  await bare.stop();

  console.log(`\n100,000 subscriptions: 1,000 tasks x 100 watchers on 1,000 sockets`);
  console.log(`   gateway RSS: ${kib((held - idle) / 100_000)} per subscription, sockets included (target: at most 10 KiB)`);
  console.log(`   bare ws server: ${kib((bareHeld - bareIdle) / 1_000)} per idle socket`);
  console.log(
    `   all 1,000 tasks complete: the last of 100,000 watchers has the terminal state after ${((lastAt - completedAt) / 1000).toFixed(2)} s (interval ${INTERVAL_MS / 1000} s; target: at most interval + 3 s)`,
  );
}

async function httpPath(upstream: Child, upstreamUrl: string) {
  const key = 'sk-perf-http';
  const ids = await submitTasks(upstreamUrl, key, 1);
  const id = ids[0]!;
  // A finished task, read from the gateway's terminal cache: the figure is the gateway's HTTP path, not the
  // upstream's or the key's budget (concurrent reads of a task that is still running share one GET).
  await upstream.ask({ type: 'complete', ids }, 'completed');
  const gateway = await startGatewayProcess(upstreamUrl);
  const query = 'query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status progress } } }';
  const body = JSON.stringify({ query, variables: { id } });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
  const bare = forkChild('./bare-yoga.ts');
  const { url: bareUrl } = await bare.next<{ url: string }>('started');
  const load = forkChild('./http-load.ts');
  const run = (url: string, runBody: string) =>
    load.ask<{ perSecond: number; failed: number }>(
      { type: 'run', url: `${url}/graphql`, body: runBody, headers, connections: 50, warmupSeconds: 2, seconds: 8 },
      'result',
    );
  const gatewayRuns: number[] = [];
  const bareRuns: number[] = [];
  let failures = 0;
  for (let round = 0; round < 2; round++) {
    bareRuns.push((await run(bareUrl, JSON.stringify({ query: '{ __typename }' }))).perSecond);
    const measured = await run(gateway.url, body);
    gatewayRuns.push(measured.perSecond);
    failures += measured.failed;
  }
  await load.stop();
  await bare.stop();
  const best = (values: number[]) => Math.max(...values);
  console.log(`\ntask(id) of a finished task over HTTP, 50 connections (best of 2 runs of 8 s, alternating)`);
  console.log(
    `   gateway: ${best(gatewayRuns).toFixed(0)} req/s (runs: ${gatewayRuns.map((r) => r.toFixed(0)).join(', ')}; failed answers: ${failures})`,
  );
  console.log(
    `   bare graphql-yoga answering { __typename }: ${best(bareRuns).toFixed(0)} req/s (runs: ${bareRuns.map((r) => r.toFixed(0)).join(', ')})`,
  );
  console.log(`   ratio: ${(best(gatewayRuns) / best(bareRuns)).toFixed(2)}x (target: at least 0.9x)`);

  const page = await wire(`${gateway.url}/graphql`, { accept: 'text/html', 'accept-encoding': 'br, gzip' });
  const html = (await fetch(`${gateway.url}/graphql`, { headers: { accept: 'text/html' } }).then((r) => r.text())) as string;
  const assets = [...html.matchAll(/(?:href|src)="(\/graphiql\/[^"]+)"/g)].map((match) => match[1]!);
  const workers = ['editorWorkerService', 'json', 'graphql'].map((label) => assets[0]!.replace(/[^/]+$/, `${label}.js`));
  let first = page.bytes;
  let cacheable = true;
  for (const path of [...assets, ...workers]) {
    const asset = await wire(`${gateway.url}${path}`, { 'accept-encoding': 'br, gzip' });
    first += asset.bytes;
    cacheable &&= /immutable/.test(String(asset.headers['cache-control']));
  }
  const reload = (await wire(`${gateway.url}/graphql`, { accept: 'text/html', 'accept-encoding': 'br, gzip' })).bytes;
  console.log(`\nGraphiQL page (${gateway.built ? 'built gateway' : 'sources through tsx'}), bytes on the wire with brotli`);
  console.log(`   first load: ${mib(first)} (page, script, styles, icon and three editor workers; target: at most 2 MB)`);
  console.log(
    `   reload: ${kib(reload)} (the page; the assets are ${cacheable ? 'cached for good' : 'NOT cached'}; target: at most 50 KB)`,
  );
  await gateway.stop();
}

/** Bytes of a response on the wire (body as sent, headers included roughly). */
function wire(url: string, headers: Record<string, string>) {
  return new Promise<{ bytes: number; headers: Record<string, unknown> }>((resolve, reject) => {
    request(url, { headers }, (response) => {
      let bytes = JSON.stringify(response.headers).length;
      response.on('data', (chunk: Buffer) => (bytes += chunk.length));
      response.on('end', () => resolve({ bytes, headers: response.headers }));
    })
      .on('error', reject)
      .end();
  });
}

/** Runs every section; `only` picks one: `polls`, `watchers` or `http`. */
export async function runPerformance(heading: () => void, only?: string): Promise<void> {
  const upstream = forkChild('./perf-upstream.ts');
  const { url } = await upstream.next<{ url: string }>('started');
  heading();
  if (!only || only === 'polls') await pollCost(url);
  if (!only || only === 'watchers') await manyWatchers(upstream, url);
  if (!only || only === 'http') await httpPath(upstream, url);
  upstream.process.send({ type: 'stop' });
}
