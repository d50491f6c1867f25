import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { track } from './leftovers.ts';

export interface RedisServer {
  url: string;
  port: number;
  /** Kills the server (SIGKILL: as abrupt as a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

/** Whether a Redis server answers PING at `url`. */
export async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** A Redis client for a test, registered with the leftovers (disconnected after the test or file). */
export function connectRedis(url: string): Redis {
  const client = new Redis(url);
  track(() => client.disconnect());
  return client;
}

/** Starts `redis-server` (Debian's package) on `port`, keeping nothing on disk; registered with the leftovers. */
export async function startRedisServer(port: number): Promise<RedisServer> {
  let child: ChildProcess | null = null;
  const url = `redis://127.0.0.1:${port}`;
  const server: RedisServer = {
    url,
    port,
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        stdio: 'ignore',
      });
      for (let attempt = 0; attempt < 100 && !(await redisAnswers(url)); attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
      if (!(await redisAnswers(url))) throw new Error(`redis-server did not start on port ${port}`);
    },
    async kill() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
  track(() => server.kill());
  await server.start();
  return server;
}
