import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga } from 'graphql-yoga';
import type { Config } from './config.ts';
import { exampleOperations } from './graphiql-examples.ts';
import { createCallbackTokens } from './pollers/callback-tokens.ts';
import type { LoopCoordinator } from './pollers/loop-coordinator.ts';
import type { Scheduler } from './pollers/scheduler.ts';
import { createTaskPoller } from './pollers/task-poller.ts';
import { type ContextServices, createRequestContext, type GatewayContext } from './schema/context.ts';
import { maskError } from './schema/errors.ts';
import { schema } from './schema/index.ts';
import { createCredential } from './upstream/credential.ts';
import { createTasksClient } from './upstream/tasks-client.ts';
import { attachGraphQLWebSocketServer } from './websocket-server.ts';

export interface GatewayOptions {
  config: Config;
  /** The upstream base URL, including `/v1` (the emulator's, when `config.upstreamUrl` is null). */
  upstreamUrl: string;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Timers of the poller. Default: Node's. */
  scheduler?: Scheduler;
  /** Random source of the poller's jitter. Default `Math.random`. */
  random?: () => number;
  /** How poll loops are shared. Default: in this process only. */
  coordinator?: LoopCoordinator;
}

export interface Gateway {
  /** Listens on `config.port` and `config.host`; resolves to the base URL (`http://host:port`). */
  start(): Promise<string>;
  /** Completes every subscription, stops every poll loop, closes connections and the upstream pool. */
  stop(): Promise<void>;
  /** The shared poller, for health and metrics. */
  readonly poller: ReturnType<typeof createTaskPoller>;
}

/** Most bytes a webhook body may have; it is read and dropped, never believed. */
const MAX_WEBHOOK_BODY_BYTES = 64 * 1024;

/** The composition root: builds every part of the gateway; nothing listens until `start()`. */
export function createGateway(options: GatewayOptions): Gateway {
  const { config, upstreamUrl, now = Date.now, scheduler, random, coordinator } = options;
  const tasksClient = createTasksClient({ baseUrl: upstreamUrl, timeoutMs: config.upstreamTimeoutMs, now });
  const poller = createTaskPoller({
    client: tasksClient,
    intervalMs: config.pollIntervalMs,
    maxIntervalMs: config.pollMaxIntervalMs,
    timeoutMs: config.pollTimeoutMs,
    now,
    scheduler,
    random,
    coordinator,
  });
  const callbackTokens = createCallbackTokens({ now });
  const { publicUrl } = config;
  const services: ContextServices = {
    tasksClient,
    poller,
    defaultCredential: config.upstreamApiKey === null ? null : createCredential(config.upstreamApiKey),
    now,
    prepareCallback: publicUrl
      ? (credential) => {
          const token = callbackTokens.issue(credential);
          return { url: `${publicUrl}/webhooks/tasks/${token}`, bind: (taskId) => callbackTokens.bind(token, taskId) };
        }
      : undefined,
  };

  const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse }, GatewayContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    logging: false,
    maskedErrors: { maskError: (error) => maskError(error) },
    graphiql: { title: 'task-gateway', defaultQuery: exampleOperations, subscriptionsProtocol: 'WS' },
    // HTTP and SSE carry the key in the header; WebSocket operations go through websocket-server.ts.
    context: ({ request }) => createRequestContext(services, request.headers.get('authorization')),
  });

  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]!;
    if (path === '/healthz') return sendJson(response, 200, { status: 'ok' });
    if (path.startsWith('/webhooks/tasks/')) return void handleWebhook(request, response, path.slice('/webhooks/tasks/'.length));
    if (path === '/' && request.method === 'GET') {
      response.writeHead(302, { location: '/graphql' }).end();
      return;
    }
    void yoga(request, response);
  });

  /** A callback is a hint: answer at once, then re-read the task with its owner's key and fan out. */
  async function handleWebhook(request: IncomingMessage, response: ServerResponse, token: string): Promise<void> {
    if (request.method !== 'POST') {
      response.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const target = /^[\w-]{16,64}$/.test(token) ? callbackTokens.resolve(token) : undefined;
    if (!target) {
      request.resume();
      return sendJson(response, 404, { error: 'unknown callback token' });
    }
    let size = 0;
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_WEBHOOK_BODY_BYTES) break;
    }
    sendJson(response, 202, { accepted: true });
    if (!poller.nudge(target.credential, target.taskId)) {
      // Nobody watches it: refresh the terminal cache for later readers, and ignore failures.
      poller.read(target.credential, target.taskId).catch(() => undefined);
    }
  }

  const webSockets = attachGraphQLWebSocketServer({
    httpServer: server,
    schema,
    services,
    maxSubscriptionsPerConnection: config.maxSubscriptionsPerConnection,
  });

  return {
    poller,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => resolve());
      });
      const { address, port, family } = server.address() as AddressInfo;
      const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : family === 'IPv6' ? `[${address}]` : address;
      return `http://${host}:${port}`;
    },
    async stop() {
      poller.dispose();
      await webSockets.dispose();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await tasksClient.close();
    },
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
