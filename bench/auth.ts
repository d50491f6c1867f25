/**
 * `npm run bench -- auth`: what end users' tokens (AUTH_MODE=jwt) cost, beside
 * the same gateway in key mode in the same run. Each gateway runs alone in its
 * process against the same upstream (bench/perf-upstream.ts); the tokens come from
 * a stand-in identity provider serving a real key set (test/helpers/identity-provider.ts).
 *  - task(id) of a finished task over HTTP, 50 connections, each request with a JWT
 *    (verified, or found among the verified ones) vs an upstream key; target at least 0.9x;
 *  - RSS per WebSocket subscription, 10,000 on 100 sockets (one user each in jwt mode); target at most 1.1x.
 */
import { startIdentityProvider } from '../test/helpers/identity-provider.ts';
import { type Child, forkChild, startGatewayProcess, usage } from './performance.ts';

const SERVER_KEY = 'sk-bench-auth';
const SUBMIT = 'mutation { submitTask(input: { model: "veo3.1-fast", prompt: "bench" }) { ... on BaseTask { id } } }';
const TASK = 'query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status progress } } }';
const SOCKETS = 100;
const PER_SOCKET = 100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;

type Gateway = Awaited<ReturnType<typeof startGatewayProcess>>;

/** Submits one task through the gateway with `authorization`; answers its id. */
async function submit(gateway: Gateway, authorization: string): Promise<string> {
  const response = await fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({ query: SUBMIT }),
  });
  const body = (await response.json()) as any;
  if (!body.data?.submitTask?.id) throw new Error(`submit failed: ${JSON.stringify(body.errors)}`);
  return body.data.submitTask.id;
}

/** Runs both measures; `only` picks one: `http` or `memory`. */
export async function auth(heading: () => void, only?: string): Promise<void> {
  const idp = await startIdentityProvider();
  const upstream = forkChild('./perf-upstream.ts');
  const { url: upstreamUrl } = await upstream.next<{ url: string }>('started');
  const start = {
    key: () => startGatewayProcess(upstreamUrl, { UPSTREAM_RATE_LIMIT_PER_KEY: '1000' }),
    jwt: () => startGatewayProcess(upstreamUrl, { ...idp.env, UPSTREAM_API_KEY: SERVER_KEY, UPSTREAM_RATE_LIMIT_PER_KEY: '1000' }),
  };
  heading();
  if (!only || only === 'http') await httpPath(idp, upstream, start);
  if (!only || only === 'memory') await subscriptionMemory(idp, start);
  upstream.process.send({ type: 'stop' });
  await idp.stop();
}

const ROUNDS = 5;
const SECONDS = 6;
const WARMUP_SECONDS = 2;

async function httpPath(
  idp: Awaited<ReturnType<typeof startIdentityProvider>>,
  upstream: Child,
  start: Record<'key' | 'jwt', () => Promise<Gateway>>,
) {
  const gateways = { key: await start.key(), jwt: await start.jwt() };
  const authorization = { key: `Bearer ${SERVER_KEY}`, jwt: `Bearer ${await idp.sign({ sub: 'bench-user' })}` };
  const ids = { key: await submit(gateways.key, authorization.key), jwt: await submit(gateways.jwt, authorization.jwt) };
  // Finished tasks, read from each gateway's terminal cache: the figure is the HTTP path and its credential check.
  await upstream.ask({ type: 'complete', ids: Object.values(ids) }, 'completed');
  const load = forkChild('./http-load.ts');
  const run = (mode: 'key' | 'jwt') =>
    load.ask<{ perSecond: number; failed: number }>(
      {
        type: 'run',
        url: `${gateways[mode].url}/graphql`,
        body: JSON.stringify({ query: TASK, variables: { id: ids[mode] } }),
        headers: { 'content-type': 'application/json', authorization: authorization[mode] },
        connections: 50,
        warmupSeconds: WARMUP_SECONDS,
        seconds: SECONDS,
      },
      'result',
    );
  // Five rounds, each pair in the other order than the last; each round's ratio, and CPU per answer from /proc.
  const runs = { key: [] as number[], jwt: [] as number[] };
  const cpu = { key: [] as number[], jwt: [] as number[] };
  let failures = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 === 0 ? (['key', 'jwt'] as const) : (['jwt', 'key'] as const)) {
      const before = usage(gateways[mode].pid).cpuMs;
      const measured = await run(mode);
      // The run's warm-up counts in the CPU but not in the answers: both modes alike.
      cpu[mode].push(((usage(gateways[mode].pid).cpuMs - before) * 1000) / (measured.perSecond * (SECONDS + WARMUP_SECONDS)));
      runs[mode].push(measured.perSecond);
      failures += measured.failed;
    }
  }
  await load.stop();
  await gateways.key.stop();
  await gateways.jwt.stop();
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const ratios = runs.jwt.map((value, i) => value / runs.key[i]!);
  const show = (values: number[]) => values.map((value) => value.toFixed(0)).join(', ');
  console.log(
    `\ntask(id) of a finished task over HTTP, 50 connections (${ROUNDS} rounds of ${SECONDS} s, each mode once a round; failed answers: ${failures})`,
  );
  console.log(
    `   jwt mode, one RS256 token: ${median(runs.jwt).toFixed(0)} req/s median (runs: ${show(runs.jwt)}), ${median(cpu.jwt).toFixed(0)} µs of CPU per answer`,
  );
  console.log(
    `   key mode, the upstream key: ${median(runs.key).toFixed(0)} req/s median (runs: ${show(runs.key)}), ${median(cpu.key).toFixed(0)} µs of CPU per answer`,
  );
  console.log(
    `   ratio: ${median(ratios).toFixed(2)}x median of the rounds (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')}; target: at least 0.9x); CPU per answer ${(median(cpu.jwt) / median(cpu.key)).toFixed(2)}x`,
  );
}

async function subscriptionMemory(
  idp: Awaited<ReturnType<typeof startIdentityProvider>>,
  start: Record<'key' | 'jwt', () => Promise<Gateway>>,
) {
  const rounds = { key: [] as number[], jwt: [] as number[] };
  for (let round = 0; round < 3; round++) {
    for (const mode of ['key', 'jwt'] as const) rounds[mode].push(await perSubscription(idp, mode, await start[mode]()));
  }
  // RSS only grows by whole pages and heap chunks: the lowest of the rounds is the least noisy.
  const least = { key: Math.min(...rounds.key), jwt: Math.min(...rounds.jwt) };
  const show = (values: number[]) => values.map(kib).join(', ');
  console.log(
    `\nRSS per WebSocket subscription: ${(SOCKETS * PER_SOCKET).toLocaleString('en')} on ${SOCKETS} sockets (one user per socket in jwt mode; least of 3 rounds, alternating)`,
  );
  console.log(`   jwt mode: ${kib(least.jwt)} (rounds: ${show(rounds.jwt)})`);
  console.log(`   key mode: ${kib(least.key)} (rounds: ${show(rounds.key)})`);
  console.log(`   ratio: ${(least.jwt / least.key).toFixed(2)}x (target: at most 1.1x)`);
}

/** RSS the gateway grows by per subscription, in bytes, when `SOCKETS` sockets each hold `PER_SOCKET`; stops the gateway. */
async function perSubscription(
  idp: Awaited<ReturnType<typeof startIdentityProvider>>,
  mode: 'key' | 'jwt',
  gateway: Gateway,
): Promise<number> {
  // One user per socket in jwt mode (each watching a task of their own); one key for every socket in key mode.
  const groups = [];
  for (let socket = 0; socket < SOCKETS; socket++) {
    const credential = mode === 'key' ? SERVER_KEY : await idp.sign({ sub: `bench-user-${socket}` });
    groups.push({ key: credential, sockets: 1, ids: [await submit(gateway, `Bearer ${credential}`)], perTask: PER_SOCKET });
  }
  await sleep(1_000);
  const idle = usage(gateway.pid).rss;
  const clients = forkChild('./perf-clients.ts');
  const primed = clients.next('primed');
  clients.process.send({ type: 'watch', url: `${gateway.url.replace('http', 'ws')}/graphql`, groups });
  await primed;
  await sleep(1_000);
  const grown = (usage(gateway.pid).rss - idle) / (SOCKETS * PER_SOCKET);
  await clients.stop();
  await gateway.stop();
  return grown;
}
