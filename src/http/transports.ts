import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config.ts';
import { schema } from '../executable-schema.ts';
import type { ContextServices } from '../graphql/context.ts';
import { createExecutor } from '../graphql/executor.ts';
import type { TrustedDocuments } from '../graphql/persisted-operations.ts';
import { createGraphQLHttpHandler, type GraphQLHttpOptions } from '../graphql/yoga.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import type { Logger } from '../logger.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { OperationTracing } from '../telemetry/operation-spans.ts';
import type { Webhooks } from '../webhooks/webhooks.ts';
import { createHostAllowList } from './allowed-hosts.ts';
import { createGraphiQL } from './graphiql.ts';
import { createHttpRoutes } from './http-routes.ts';
import { createGraphQLWebSocketServer } from './websocket-server.ts';

export interface TransportsOptions {
  config: Config;
  services: ContextServices;
  webhooks: Webhooks;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Whether the upstream answers at all, for `/readyz`. */
  probe: () => Promise<boolean>;
  /** How coordination stands, for `/readyz`. */
  coordination: () => string;
  /** The only operations allowed; null: any, with APQ. */
  trustedDocuments: TrustedDocuments | null;
  /** Heartbeat of multipart subscriptions, in ms (`MultipartSubscriptionsOptions.heartbeatMs`). Default: its default. */
  multipartHeartbeatMs?: GraphQLHttpOptions['multipartHeartbeatMs'];
  /** A span per operation on every transport. Default: none. */
  operationTracing?: OperationTracing;
  /** jwt mode: verifies end users' tokens on every transport. Default null (key mode). */
  authenticator?: Authenticator | null;
}

/**
 * Everything clients reach, on one port: plain HTTP routes, GraphQL over HTTP,
 * SSE and multipart (yoga), GraphiQL and its assets, webhooks, and graphql-ws
 * on the same path. Nothing listens before `listen()`.
 */
export interface Transports {
  /** Open WebSocket connections. */
  connections(): number;
  /** Starts the WebSocket side and listens on `config.port` and `config.host`; resolves to the base URL. */
  listen(): Promise<string>;
  /** Refuses new requests (503) and stops accepting connections; resolves when every connection has closed. */
  refuse(): Promise<void>;
  /**
   * Ends every subscription stream as its clients read a restart, never as the end of the task:
   * WebSockets close with 1001, SSE and multipart streams are cut without their normal end.
   * Clients reconnect and subscribe again, elsewhere or later.
   */
  endStreams(): Promise<void>;
  /** Lets in-flight requests finish for up to `graceMs`, then closes what is left and calls `onGraceOver`. */
  drain(closed: Promise<void>, graceMs: number, onGraceOver: () => void): Promise<void>;
}

export function createTransports(options: TransportsOptions): Transports {
  const {
    config,
    services,
    webhooks,
    metrics,
    logger,
    probe,
    coordination,
    trustedDocuments,
    multipartHeartbeatMs,
    operationTracing,
    authenticator = null,
  } = options;
  const graphiql = createGraphiQL();
  const hosts = createHostAllowList({ allowedHosts: config.allowedHosts, corsOrigins: config.corsOrigins });
  const routes = createHttpRoutes({
    graphql: createGraphQLHttpHandler(schema, services, logger, {
      trustedDocuments,
      multipartHeartbeatMs,
      maxSubscriptionWeight: config.maxSubscriptionsPerConnection,
      corsOrigins: config.corsOrigins,
      graphiql: config.graphiql,
      renderGraphiQL: graphiql.renderPage,
      authenticator,
      plugins: operationTracing ? [operationTracing.plugin] : [],
    }),
    graphiql: config.graphiql ? graphiql : null,
    webhooks,
    metrics,
    logger,
    probe,
    coordination,
    identity: authenticator?.status,
    devIdentityProvider: authenticator?.devIdentityProvider ?? null,
    hosts,
  });
  const server = createServer(routes.listener);
  const webSockets = createGraphQLWebSocketServer({
    httpServer: server,
    schema,
    executor: createExecutor({ schema }),
    services,
    maxSubscriptionsPerConnection: config.maxSubscriptionsPerConnection,
    trustedDocuments,
    refuseUpgrade: hosts.upgradeRefusal,
    operationTracing,
    onSocketError: (error) => logger.debug({ reason: error.message }, 'websocket closed on a protocol error'),
    authenticator,
  });

  return {
    connections: webSockets.connections,
    async listen() {
      if (config.allowedHosts === null && config.upstreamApiKey !== null) {
        logger.warn('ALLOWED_HOSTS=* with a default key: any site whose name comes to resolve here (DNS rebinding) can spend that key');
      }
      webSockets.start();
      return listen(server, config.port, config.host);
    },
    refuse() {
      routes.refuse();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async endStreams() {
      routes.cutStreams();
      await webSockets.dispose();
    },
    async drain(closed, graceMs, onGraceOver) {
      server.closeIdleConnections();
      const grace = setTimeout(() => {
        server.closeAllConnections();
        onGraceOver();
      }, graceMs);
      await closed;
      clearTimeout(grace);
    },
  };
}

/** Listens; resolves to the base URL clients can reach (`http://127.0.0.1:<port>` for a wildcard address). */
async function listen(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const { address, port: bound, family } = server.address() as AddressInfo;
  const reachable = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : family === 'IPv6' ? `[${address}]` : address;
  return `http://${reachable}:${bound}`;
}
