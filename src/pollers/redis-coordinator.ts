import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RedisConfig } from '../lib/redis-config.ts';
import { closeRedis, createRedisConnection } from '../lib/redis-connection.ts';
import { isTerminal, type TaskSnapshot } from '../upstream/task-snapshot.ts';
import type { LoopCoordinator, LoopMembership } from './loop-coordinator.ts';

export interface RedisCoordinatorOptions {
  /** Where Redis is (`config.redis`). */
  redis: RedisConfig;
  /** How long a lease lasts unless renewed; a dead holder is replaced within it. Default 15 000 ms. */
  leaseMs?: number;
  /** How long a finished task's snapshot is kept for every replica. Default 3 600 000 ms (1 h). */
  terminalTtlMs?: number;
  /** Prefix of every Redis key and channel. Default `redis.prefix` (`REDIS_PREFIX`). */
  prefix?: string;
  /** This process's name in leases. Default `<host>:<pid>:<random>`. */
  replicaId?: string;
  /** Told when coordination goes down (false) or comes back (true). */
  onHealthChange?: (healthy: boolean) => void;
  /**
   * How often this replica publishes a heartbeat to itself, in ms: only its arrival on the subscriber
   * connection says that changes reach this replica; missing for two beats (and two command deadlines),
   * coordination counts as down. Default 1 000 ms.
   */
  heartbeatMs?: number;
}

/** Channels per SUBSCRIBE when the subscriber subscribes every watched loop again. */
const SUBSCRIBE_CHUNK = 1_000;
/** How many beats apart a Cluster's subscriber is asked for every channel again. */
const CLUSTER_RELISTEN_BEATS = 30;

/** The prefix of the message that asks watchers of a loop to re-read the task now; the sender's id follows. */
const NUDGE = 'nudge:';

/** Takes the lease when it is free, renews it when it is ours. */
const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;
/** Gives the lease up, only if it is still ours. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Several gateway replicas share one poll loop per (credential hash, task id)
 * through Redis: a lease (`SET NX PX`, renewed by its holder on each poll,
 * released with a token check) lets exactly one replica with watchers poll;
 * what it finds is published on the loop's channel to every replica with
 * watchers, and stored (for the lease time, an hour once terminal) so that a
 * watcher joining anywhere starts from it without an upstream call. Redis
 * holds hashes and task ids only, never a key.
 *
 * When Redis cannot be reached, or does not answer within its command
 * deadline, every replica polls on its own (correct, if less economical) and
 * rejoins when it returns.
 *
 * Every script touches one key, so each runs on a Cluster as it is. Changes
 * go out with plain PUBLISH, not sharded pub/sub: a Cluster forwards it to
 * every node, so a replica subscribed anywhere hears it; it works on Redis 6
 * and with every topology alike; and one message per change of a watched
 * task is little for the cluster bus. SSUBSCRIBE would spare that traffic,
 * at the price of a subscriber connection per shard that follows slot moves.
 */
export function createRedisCoordinator(options: RedisCoordinatorOptions): LoopCoordinator {
  const {
    redis,
    leaseMs = 15_000, // 15 s
    terminalTtlMs = 3_600_000, // 1 h
    prefix = redis.prefix,
    replicaId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`,
    onHealthChange,
    heartbeatMs = 1_000, // 1 s
  } = options;
  // Commands fail fast while Redis is away, so that loops fall back to polling at once.
  // Named after the replica, so that `CLIENT LIST` on any node tells whose connection it sees.
  const commands = createRedisConnection(redis, { name: `${prefix}:commands:${replicaId}` });
  const subscriber = createRedisConnection(redis, { offlineQueue: true, resubscribe: false, name: `${prefix}:subscriber:${replicaId}` });
  const delivers = new Map<string, Set<(snapshot: TaskSnapshot) => void>>();
  const nudges = new Map<string, () => void>();
  let wasHealthy = false;
  let heartbeat: NodeJS.Timeout | undefined;

  const channelOf = (key: string) => `${prefix}:changes:${key}`;
  const leaseOf = (key: string) => `${prefix}:lease:${key}`;
  const snapshotOf = (key: string) => `${prefix}:snapshot:${key}`;
  const heartbeatChannel = `${prefix}:heartbeat:${replicaId}`;
  // A subscriber that reconnects into a stall is `ready` (its handshake went through) while its
  // subscriptions are held, and on a Cluster it is one connection to one node, which a PING (sent to
  // any node) does not reach: only a heartbeat that went the way of a change says changes reach it.
  // Each beat publishes the next number; Redis taking one that does not come back within the bound
  // means the subscriber does not hear. A PUBLISH that failed says nothing of the subscriber (on a
  // Cluster it may have gone to another node, stalled itself): the commands connection answers for it.
  const silenceMs = 2 * heartbeatMs + 2 * redis.commandTimeoutMs;
  let published = 0;
  let heard = 0;
  /** The last heartbeat published before the subscriber's connection subscribed: a later one must be heard. */
  let listenedAfter = 0;
  /** The first heartbeat Redis took that has not come back yet, and when Redis took it (performance.now()). */
  let unheard: { number: number; at: number } | undefined;
  /** A SUBSCRIBE Redis refused on a live connection (a busy script, an ACL): every channel is asked for again. */
  let relisten = false;
  /** When every channel was last asked for. */
  let lastListen = Number.NEGATIVE_INFINITY;
  /** When the subscriber last became ready. */
  let listeningSince = Number.NEGATIVE_INFINITY;
  /** Reconnects made for silence with no heartbeat heard since: each waits twice as long as the last (at most 8 bounds). */
  let silentReconnects = 0;
  let lastBeat = performance.now();
  let beats = 0;
  const heartbeatHeard = () => heard > listenedAfter && (unheard === undefined || performance.now() - unheard.at <= silenceMs);
  // And no channel refused since: a loop whose SUBSCRIBE Redis refused would hear nothing.
  const subscriberAnswers = () => !relisten && heartbeatHeard();
  const healthy = () => commands.status === 'ready' && subscriber.status === 'ready' && subscriberAnswers();

  const noteHealth = () => {
    const now = healthy();
    if (now !== wasHealthy) {
      wasHealthy = now;
      onHealthChange?.(now);
    }
  };
  // The subscriber's 'ready' is judged below, once what it heard before is forgotten.
  commands.on('ready', noteHealth);
  for (const client of [commands, subscriber]) client.on('close', noteHealth);

  /**
   * Subscribes every watched loop's channel, then the heartbeat's, whatever ioredis remembers (it renews
   * nothing: `autoResubscribe` is off): a SUBSCRIBE sent while Redis was away is dropped with the offline
   * queue, and an UNSUBSCRIBE too. In chunks, so that no command grows with the number of loops; the
   * heartbeat's last on the same connection, so that a heartbeat heard after it says the others are
   * subscribed as well. Subscribing twice is harmless.
   */
  function listen(): Promise<unknown> {
    lastListen = performance.now();
    const channels = [...delivers.keys()].map(channelOf);
    const sent: Array<Promise<unknown>> = [];
    for (let from = 0; from < channels.length; from += SUBSCRIBE_CHUNK) {
      sent.push(subscribe(subscriber.subscribe(...channels.slice(from, from + SUBSCRIBE_CHUNK))));
    }
    sent.push(subscribe(subscriber.subscribe(heartbeatChannel)));
    return Promise.all(sent);
  }
  function subscribe(sent: Promise<unknown>): Promise<unknown> {
    return sent.catch((error: unknown) => {
      // Refused by Redis (an error reply starts with its code: NOPERM, BUSY), not timed out: a SUBSCRIBE past
      // its deadline was sent, and Redis applies it when it gets to it.
      if (isErrorReply(error) && subscriber.status === 'ready') relisten = true;
      throw error;
    });
  }
  subscriber.on('ready', () => {
    listeningSince = performance.now();
    listenedAfter = published;
    unheard = undefined;
    relisten = false;
    noteHealth();
    listen().then(beat, () => undefined);
  });
  function beat(): void {
    const now = performance.now();
    // A beat that comes late (the event loop was held) judges nothing: answers may be waiting unread.
    const overrun = now - lastBeat - heartbeatMs;
    const late = overrun > heartbeatMs;
    if (late && unheard !== undefined) unheard.at += overrun;
    lastBeat = now;
    noteHealth();
    if (subscriber.status !== 'ready' || commands.status !== 'ready') return;
    // Silent past the bound although Redis takes commands: its connection (on a Cluster, the node it is on)
    // is stalled or half-open, and a subscriber that sends nothing would never notice. A new one is made
    // (on a Cluster, on any node), less and less often while none is heard.
    if (!late && !heartbeatHeard() && now - listeningSince > silenceMs * 2 ** Math.min(silentReconnects, 3)) {
      silentReconnects += 1;
      subscriber.disconnect(true);
      return;
    }
    if (relisten && now - lastListen > silenceMs) {
      relisten = false;
      listenedAfter = published;
      listen().catch(() => undefined);
    }
    // On a Cluster, ioredis may move the subscriber to another node by itself, copying only the channels
    // the old connection had confirmed: a loop joined just then would be lost, so every 30 beats all are asked again.
    beats += 1;
    if (redis.kind === 'cluster' && beats % CLUSTER_RELISTEN_BEATS === 0) listen().catch(() => undefined);
    const number = ++published;
    commands.publish(heartbeatChannel, String(number)).then(
      (receivers) => {
        if (number > heard && unheard === undefined) unheard = { number, at: performance.now() };
        // One server (or Sentinel's master) counts every receiver: none means the subscription is gone
        // (a Cluster node counts only its own clients). At most once per bound: just after a reconnect,
        // or on a demoted master after a failover, it says so for a while.
        if (receivers === 0 && redis.kind !== 'cluster' && performance.now() - lastListen > silenceMs) {
          listen().catch(() => undefined);
        }
      },
      () => undefined,
    );
  }
  commands.on('ready', beat);

  subscriber.on('message', (channel: string, message: string) => {
    if (channel === heartbeatChannel) {
      heard = Math.max(heard, Number(message) || 0);
      silentReconnects = 0;
      if (unheard !== undefined && heard >= unheard.number) unheard = undefined;
      noteHealth();
      return;
    }
    const key = channel.slice(`${prefix}:changes:`.length);
    const listeners = delivers.get(key);
    if (!listeners) return;
    if (message.startsWith(NUDGE)) {
      // The sender has re-read the task itself already, where it watches it.
      if (message !== `${NUDGE}${replicaId}`) nudges.get(key)?.();
      return;
    }
    let parsed: { from: string; snapshot: TaskSnapshot };
    try {
      parsed = decode(message);
    } catch {
      return;
    }
    // This replica delivered its own finding already.
    if (parsed.from === replicaId) return;
    for (const deliver of listeners) deliver(parsed.snapshot);
  });

  function share(key: string, snapshot: TaskSnapshot): void {
    if (commands.status !== 'ready') return;
    const message = encode(replicaId, snapshot);
    // Two commands, not a MULTI: on a Cluster a transaction must stay in one slot, and a channel has none.
    commands.set(snapshotOf(key), message, 'PX', isTerminal(snapshot.status) ? terminalTtlMs : leaseMs).catch(() => undefined);
    commands.publish(channelOf(key), message).catch(() => undefined);
  }

  return {
    replicaId,
    join(key, deliver, nudged): LoopMembership {
      if (nudged) nudges.set(key, nudged);
      let listeners = delivers.get(key);
      if (!listeners) {
        listeners = new Set();
        delivers.set(key, listeners);
        subscribe(subscriber.subscribe(channelOf(key))).catch(() => undefined);
      }
      listeners.add(deliver);
      let joined = true;
      return {
        async mayPoll() {
          if (!joined) return false;
          // Without both connections (and a subscriber that answers) changes may not reach this replica: it polls itself.
          if (!healthy()) return true;
          try {
            return (await commands.eval(ACQUIRE, 1, leaseOf(key), replicaId, leaseMs)) === 1;
          } catch {
            return true;
          }
        },
        publish(snapshot) {
          if (!joined) return;
          for (const local of delivers.get(key) ?? []) local(snapshot);
          share(key, snapshot);
        },
        async initial() {
          if (commands.status !== 'ready') return null;
          try {
            const stored = await commands.get(snapshotOf(key));
            return stored ? decode(stored).snapshot : null;
          } catch {
            return null;
          }
        },
        leave() {
          if (!joined) return;
          joined = false;
          listeners.delete(deliver);
          if (listeners.size === 0) {
            delivers.delete(key);
            nudges.delete(key);
            subscriber.unsubscribe(channelOf(key)).catch(() => undefined);
            if (commands.status === 'ready') commands.eval(RELEASE, 1, leaseOf(key), replicaId).catch(() => undefined);
          }
        },
      };
    },
    announce: share,
    nudge(key) {
      if (commands.status === 'ready') commands.publish(channelOf(key), `${NUDGE}${replicaId}`).catch(() => undefined);
    },
    healthy,
    start() {
      // A Redis that is away now is retried by `retryStrategy`; meanwhile loops poll locally.
      for (const client of [commands, subscriber]) client.connect().catch(() => undefined);
      heartbeat = setInterval(beat, heartbeatMs);
      heartbeat.unref();
    },
    async dispose() {
      clearInterval(heartbeat);
      delivers.clear();
      await Promise.all([closeRedis(commands), closeRedis(subscriber)]);
    },
  };
}

/** Whether `error` is Redis's answer (`NOPERM ...`, `BUSY ...`) rather than the client's (a timeout, a closed connection). */
function isErrorReply(error: unknown): boolean {
  return error instanceof Error && /^[A-Z]+ /.test(error.message);
}

function encode(from: string, snapshot: TaskSnapshot): string {
  return JSON.stringify({ from, snapshot });
}

/** Revives the dates of a snapshot read back from JSON. */
function decode(message: string): { from: string; snapshot: TaskSnapshot } {
  const { from, snapshot } = JSON.parse(message) as { from: string; snapshot: TaskSnapshot };
  const date = (value: unknown) => (value === null ? null : new Date(value as string));
  return {
    from,
    snapshot: {
      ...snapshot,
      createdAt: new Date(snapshot.createdAt),
      completedAt: date(snapshot.completedAt),
      result: snapshot.result && {
        images: snapshot.result.images.map((file) => ({ ...file, expiresAt: date(file.expiresAt) })),
        videos: snapshot.result.videos.map((file) => ({ ...file, expiresAt: date(file.expiresAt) })),
        audios: snapshot.result.audios.map((file) => ({ ...file, expiresAt: date(file.expiresAt) })),
      },
    },
  };
}
