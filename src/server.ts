import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga } from 'graphql-yoga';
import type { Config } from './config.ts';
import { exampleOperations } from './graphiql-examples.ts';
import { type ContextServices, createRequestContext, type GatewayContext } from './schema/context.ts';
import { maskError } from './schema/errors.ts';
import { schema } from './schema/index.ts';
import { createCredential } from './upstream/credential.ts';
import { createTasksClient } from './upstream/tasks-client.ts';

export interface GatewayOptions {
  config: Config;
  /** The upstream base URL, including `/v1` (the emulator's, when `config.upstreamUrl` is null). */
  upstreamUrl: string;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

export interface Gateway {
  /** Listens on `config.port` and `config.host`; resolves to the base URL (`http://host:port`). */
  start(): Promise<string>;
  /** Stops accepting, closes connections and releases the upstream pool. */
  stop(): Promise<void>;
}

/** The composition root: builds every part of the gateway; nothing listens until `start()`. */
export function createGateway(options: GatewayOptions): Gateway {
  const { config, upstreamUrl, now = Date.now } = options;
  const tasksClient = createTasksClient({ baseUrl: upstreamUrl, timeoutMs: config.upstreamTimeoutMs, now });
  const services: ContextServices = {
    tasksClient,
    defaultCredential: config.upstreamApiKey === null ? null : createCredential(config.upstreamApiKey),
    now,
  };
  const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse }, GatewayContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    logging: false,
    maskedErrors: { maskError: (error) => maskError(error) },
    graphiql: { title: 'task-gateway', defaultQuery: exampleOperations },
    context: ({ request }) => createRequestContext(services, request.headers.get('authorization')),
  });
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz') return sendJson(response, 200, { status: 'ok' });
    if (path === '/' && request.method === 'GET') {
      response.writeHead(302, { location: '/graphql' }).end();
      return;
    }
    void yoga(request, response);
  });

  return {
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
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await tasksClient.close();
    },
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
