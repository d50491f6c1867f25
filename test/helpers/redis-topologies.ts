import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { track } from './leftovers.ts';
import { redisAnswers } from './redis-server.ts';
import { freePort } from './stack.ts';

const run = promisify(execFile);

/** A `redis-server` process the test started (data node or sentinel); SIGKILLed with the leftovers. */
export interface RedisProcess {
  port: number;
  /** SIGKILL: as abrupt as a crash. */
  kill(): Promise<void>;
}

/** Spawns `redis-server` with `args` and waits until it answers PING on `port`. */
async function spawnRedis(port: number, args: string[]): Promise<RedisProcess> {
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  const process: RedisProcess = {
    port,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
  track(() => process.kill());
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 100 && !(await redisAnswers(url)); attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
  if (!(await redisAnswers(url))) throw new Error(`redis-server ${args.join(' ')} did not start on port ${port}`);
  return process;
}

/** A directory for configuration files, removed with the leftovers. */
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'task-gateway-redis-'));
  track(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const nodeArgs = (port: number, dir: string) => [
  '--port',
  String(port),
  '--bind',
  '127.0.0.1',
  '--save',
  '',
  '--appendonly',
  'no',
  '--dir',
  dir,
];

export interface SentinelSet {
  /** `REDIS_SENTINELS`. */
  sentinels: string;
  /** `REDIS_SENTINEL_NAME`. */
  name: string;
  master: RedisProcess;
  replica: RedisProcess;
  /** The port of the master the sentinels name now. */
  masterPort(): Promise<number>;
  /** Kills every process of the set (before another fixture may take a port it held). */
  stop(): Promise<void>;
}

/**
 * A master, one replica and `sentinelCount` sentinels (quorum: a majority) watching it as `main`,
 * quick to fail over: down after 500 ms, failover timeout 2 s.
 */
export async function startSentinelSet(sentinelCount = 1): Promise<SentinelSet> {
  const dir = scratch();
  const [masterPort, replicaPort] = [await freePort(), await freePort()];
  const master = await spawnRedis(masterPort, nodeArgs(masterPort, dir));
  const replica = await spawnRedis(replicaPort, [...nodeArgs(replicaPort, dir), '--replicaof', '127.0.0.1', String(masterPort)]);
  const ports: number[] = [];
  const sentinels: RedisProcess[] = [];
  for (let i = 0; i < sentinelCount; i++) {
    const port = await freePort();
    const file = join(dir, `sentinel-${port}.conf`);
    writeFileSync(
      file,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor main 127.0.0.1 ${masterPort} ${Math.floor(sentinelCount / 2) + 1}`,
        'sentinel down-after-milliseconds main 500',
        'sentinel failover-timeout main 2000',
        'sentinel parallel-syncs main 1',
        '',
      ].join('\n'),
    );
    sentinels.push(await spawnRedis(port, [file, '--sentinel']));
    ports.push(port);
  }
  const ask = new Redis({ port: ports[0]!, host: '127.0.0.1', lazyConnect: true });
  ask.on('error', () => undefined);
  track(() => ask.disconnect());
  return {
    sentinels: ports.map((port) => `127.0.0.1:${port}`).join(','),
    name: 'main',
    master,
    replica,
    async masterPort() {
      const [, port] = (await ask.call('SENTINEL', 'get-master-addr-by-name', 'main')) as [string, string];
      return Number(port);
    },
    async stop() {
      ask.disconnect();
      await Promise.all([...sentinels, master, replica].map((process) => process.kill()));
    },
  };
}

export interface RedisCluster {
  /** `REDIS_CLUSTER_NODES`. */
  nodes: string;
  processes: RedisProcess[];
  stop(): Promise<void>;
}

/** Three masters on free ports, no replicas, every slot assigned (`redis-cli --cluster create`). */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = scratch();
  const ports = [await freePort(), await freePort(), await freePort()];
  const processes = await Promise.all(
    ports.map((port) =>
      spawnRedis(port, [
        ...nodeArgs(port, dir),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        // DEBUG SLEEP stalls one node (the stall tests); from this machine only.
        '--enable-debug-command',
        'local',
      ]),
    ),
  );
  const addresses = ports.map((port) => `127.0.0.1:${port}`);
  await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
  // Every node agrees the cluster is whole before a client asks it for slots.
  for (const port of ports) {
    const client = new Redis({ port, host: '127.0.0.1' });
    try {
      for (let attempt = 0; attempt < 200; attempt++) {
        if (String(await client.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      client.disconnect();
    }
  }
  return { nodes: addresses.join(','), processes, stop: async () => void (await Promise.all(processes.map((node) => node.kill()))) };
}
