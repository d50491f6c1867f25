import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Spawned, spawnEntry } from './helpers/spawn.ts';
import { freePort } from './helpers/stack.ts';
import { type StandIn, startStandIn } from './helpers/stand-in.ts';

/** Resolves with the exit code, or 'still running' when `withinMs` passes first. */
async function exitWithin(spawned: Spawned, withinMs: number): Promise<number | null | 'still running'> {
  if (spawned.child.exitCode !== null) return spawned.child.exitCode;
  const timer = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), withinMs).unref());
  const exited = once(spawned.child, 'exit').then(([code]) => code as number | null);
  return Promise.race([exited, timer]);
}

/** Polls `url` until it answers, or gives up after `withinMs`. */
async function waitUntilUp(url: string, withinMs = 15_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1_000) })).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} never answered`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the gateway process, signals and a stalled log reader', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('exits 0 within the deadline on SIGTERM while nobody reads its stdout (a FIFO), dropping and counting log lines', {
    timeout: 60_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gateway-fifo-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const fifo = join(dir, 'stdout');
    execFileSync('mkfifo', [fifo]);
    // A reader that exists but never reads: a stuck log shipper. Opening it first lets the writer open.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    cleanups.push(() => closeSync(reader));
    const writer = openSync(fifo, 'w');
    const port = await freePort();
    const gateway = spawnEntry('src/main.ts', [], { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'debug' }, { stdout: writer });
    closeSync(writer);
    cleanups.push(() => gateway.child.kill('SIGKILL'));
    const url = `http://127.0.0.1:${port}`;
    await waitUntilUp(`${url}/healthz`);
    // Each request logs a line of about 300 bytes at debug: 6 000 of them are far more than
    // the pipe's 64 KiB and the gateway's 1 MiB queue together.
    const long = `/nowhere/${'x'.repeat(190)}`;
    const client = async () => {
      for (let i = 0; i < 600; i++) {
        await fetch(`${url}${long}`, { signal: AbortSignal.timeout(2_000) })
          .then((response) => response.arrayBuffer())
          .catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: 10 }, client));
    const metrics = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })
      .then((response) => response.text())
      .catch(() => 'no answer');

    gateway.child.kill('SIGTERM');
    // The deadline is 10 s; a generous bound beyond it.
    expect(await exitWithin(gateway, 20_000)).toBe(0);
    expect(Number(/^task_gateway_log_lines_dropped_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
  });

  describe('with a request in flight when the signal comes', () => {
    let upstream: StandIn;
    afterEach(async () => {
      await upstream.stop();
    });

    it('absorbs a second SIGTERM 50 ms after the first: a clean stop, exit 0', { timeout: 60_000 }, async () => {
      // An upstream that never answers keeps a query in flight, so the stop takes its grace period.
      upstream = await startStandIn(() => new Promise(() => undefined));
      const gateway = spawnEntry('src/main.ts', [], {
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        UPSTREAM_URL: upstream.url,
        UPSTREAM_API_KEY: 'sk-test',
      });
      cleanups.push(() => gateway.child.kill('SIGKILL'));
      const [, url] = (await gateway.waitFor(/GraphiQL at (http:\/\/[\d.:]+)\/graphql/)) as unknown as [string, string];
      const inFlight = fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ task(id: "task-hangs") { __typename } }' }),
      }).catch(() => undefined);
      while (upstream.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));

      gateway.child.kill('SIGTERM');
      // Two pending SIGTERMs merge into one (POSIX signals do not queue): the second goes once the first was
      // taken, then 50 ms on, while the stop still waits for the request in flight.
      await gateway.waitFor(/"shutting down"/);
      await new Promise((resolve) => setTimeout(resolve, 50));
      gateway.child.kill('SIGTERM');
      expect(await exitWithin(gateway, 20_000)).toBe(0);
      expect(gateway.child.signalCode).toBeNull();
      await inFlight;
      const messages = gateway
        .output()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).msg);
      expect(messages).toEqual(
        expect.arrayContaining(['shutting down', 'already shutting down; a third signal forces the exit', 'task-gateway stopped']),
      );
    });
  });
});
