import { type Config, readConfig } from '../../src/config.ts';
import { createEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/emulator.ts';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/gateway.ts';
import type { Scheduler } from '../../src/lib/scheduler.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import { track } from './leftovers.ts';

export interface GraphQLResponse<T = any> {
  data?: T;
  errors?: Array<{ message: string; path?: string[]; extensions?: Record<string, unknown> }>;
}

export interface Stack {
  gatewayUrl: string;
  emulator: Emulator | null;
  gateway: Gateway;
  /** POSTs one operation to /graphql, with `Authorization: Bearer <key>` when a key is given. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, key?: string | null): Promise<GraphQLResponse<T>>;
  stop(): Promise<void>;
}

export interface StackOptions {
  emulator?: EmulatorOptions;
  /** Point the gateway at this upstream instead of a fresh emulator. */
  upstreamUrl?: string;
  /** Extra environment for the gateway's config. */
  env?: Record<string, string>;
  now?: () => number;
  scheduler?: Scheduler;
  random?: () => number;
  /** Default: silent. */
  logger?: Logger;
  /** Passed to `createGateway`. */
  trustedDocuments?: GatewayOptions['trustedDocuments'];
  multipartHeartbeatMs?: number;
}

/** Starts an emulator on port 0, registered with the leftovers (`stop()` runs once). */
export async function startEmulator(options?: EmulatorOptions): Promise<Emulator> {
  const emulator = createEmulator(options);
  const { stop: close } = emulator;
  const stop = track(() => close());
  await emulator.start();
  return Object.assign(emulator, { stop });
}

/** Starts an emulator (unless `upstreamUrl` is given) and a gateway, both on port 0, registered with the leftovers. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const emulator = options.upstreamUrl ? null : await startEmulator(options.emulator);
  const upstreamUrl = options.upstreamUrl ?? emulator!.url;
  const config: Config = readConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: upstreamUrl, ...options.env });
  const gateway = createGateway({
    config,
    upstreamUrl,
    now: options.now,
    scheduler: options.scheduler,
    random: options.random,
    logger: options.logger ?? createLogger('silent'),
    trustedDocuments: options.trustedDocuments,
    multipartHeartbeatMs: options.multipartHeartbeatMs,
  });
  const stopGateway = track(() => gateway.stop());
  const gatewayUrl = await gateway.start();
  return {
    gatewayUrl,
    emulator,
    gateway,
    async gql(query, variables, key) {
      const response = await fetch(`${gatewayUrl}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json',
          ...(key ? { authorization: `Bearer ${key}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as GraphQLResponse;
    },
    async stop() {
      await stopGateway();
      await emulator?.stop();
    },
  };
}

/** The fields tests select on any task. */
export const TASK_FIELDS = `
  __typename
  ... on BaseTask { id status progress action model createdAt }
  ... on TerminalTask { completedAt cost }
  ... on CompletedTask { result { images { urls expiresAt expired } videos { urls expiresAt expired } audios { urls expiresAt expired } } }
  ... on FailedTask { error { code message retryable } }
  ... on UnknownTask { upstreamStatus }
`;

/** A port that was free a moment ago, for a gateway that must know its own URL before it listens. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
