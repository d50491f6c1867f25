import type { IncomingMessage, Server } from 'node:http';
import type { ExecutionResult, GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { type ContextServices, createRequestContext, type ResolvedCaller } from '../graphql/context.ts';
import { gatewayError } from '../graphql/errors.ts';
import type { Executor } from '../graphql/executor.ts';
import { MAX_TASKS_PER_SUBSCRIPTION } from '../graphql/limits.ts';
import { createTrustedTextCheck, type TrustedDocuments } from '../graphql/persisted-operations.ts';
import { subscriptionWeight } from '../graphql/subscription-weight.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import { TokenRefusedError } from '../identity/token-refused-error.ts';
import type { OperationTracing } from '../telemetry/operation-spans.ts';
import { credentialFromConnectionParams } from '../upstream/credential.ts';
import { UpstreamError } from '../upstream/errors.ts';
import { createHostAllowList } from './allowed-hosts.ts';
import { createPayloadSplicer } from './websocket-payloads.ts';

export interface WebSocketServerOptions {
  httpServer: Server;
  schema: GraphQLSchema;
  /** Parses, validates and runs operations (one per gateway). */
  executor: Executor;
  services: ContextServices;
  /** The path upgrades are accepted on. Default `/graphql`. */
  path?: string;
  /** When given, only these operations run (the text is checked by its sha-256). Default: any operation. */
  trustedDocuments?: TrustedDocuments | null;
  /** Subscriptions one socket may hold; `tasksUpdated(ids)` counts one per id. Default 100. */
  maxSubscriptionsPerConnection?: number;
  /** Largest message accepted, in bytes. Default 65 536. */
  maxPayloadBytes?: number;
  /** How long a socket may wait before `connection_init`. Default 3 000 ms. */
  connectionInitTimeoutMs?: number;
  /** The raw HTTP answer refusing an upgrade, or null to accept it (`HostAllowList.upgradeRefusal`). Default: loopback `Host` names and no browser origin but theirs. */
  refuseUpgrade?: (request: IncomingMessage) => string | null;
  /** Ping interval; a socket that missed the last pong is dropped. Default 30 000 ms. */
  keepAliveMs?: number;
  /** Told of each socket's error (a client's protocol violation; ws closes that socket). Default: ignored. */
  onSocketError?: (error: Error) => void;
  /** jwt mode: the token in `connectionParams` names the user, and the socket closes with 4403 when it expires. Default null (key mode). */
  authenticator?: Authenticator | null;
  /** A span per operation, continuing the `traceparent` of the subscribe message's `extensions` or of the upgrade. Default: none. */
  operationTracing?: OperationTracing;
}

export interface GraphQLWebSocketServer {
  /** Accepts upgrades on the HTTP server and starts the keep-alive pings. */
  start(): void;
  /** Open sockets. */
  connections(): number;
  /** Closes every socket with 1001 (going away) and stops accepting. */
  dispose(): Promise<void>;
}

/**
 * graphql-ws on the HTTP server's port and path. The key comes once per
 * connection (`connectionParams.authorization`, "Bearer <key>"); a missing or
 * malformed one is refused at connection time with 4403, which clients retry
 * with fresh credentials. Operations bypass yoga: they are parsed once per
 * distinct text and subscription events are executed once per change for all
 * subscribers (`Executor`), with errors masked by the same function. Nothing
 * listens and no timer runs before `start()`.
 */
export function createGraphQLWebSocketServer(options: WebSocketServerOptions): GraphQLWebSocketServer {
  const {
    httpServer,
    schema,
    executor,
    services,
    path = '/graphql',
    maxSubscriptionsPerConnection = 100,
    maxPayloadBytes = 64 * 1024, // 64 KiB
    connectionInitTimeoutMs = 3_000, // 3 s
    keepAliveMs = 30_000, // 30 s
    onSocketError = () => undefined,
    trustedDocuments = null,
    refuseUpgrade = createHostAllowList().upgradeRefusal,
    authenticator = null,
    operationTracing,
  } = options;
  const webSockets = new WebSocketServer({ noServer: true, maxPayload: maxPayloadBytes });
  const isTrusted = trustedDocuments && createTrustedTextCheck(trustedDocuments);
  const callers = new WeakMap<object, ResolvedCaller>();
  /** Per socket in jwt mode: cancels the timer that closes it when its token expires. */
  const expiries = new WeakMap<object, () => void>();
  /** Per socket: the weight of each subscription id, pruned of ended ones on every new subscribe (bounded by the limit). */
  const weights = new WeakMap<object, Map<string, number>>();

  const onUpgrade = (request: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
    if ((request.url ?? '').split('?')[0] !== path) return void socket.destroy();
    const refusal = refuseUpgrade(request);
    if (refusal !== null) return void socket.end(refusal);
    webSockets.handleUpgrade(request, socket, head, (webSocket) => webSockets.emit('connection', webSocket, request));
  };

  const alive = new WeakSet<import('ws').WebSocket>();
  const payloads = createPayloadSplicer();
  webSockets.on('connection', (socket) => {
    payloads.wrap(socket);
    alive.add(socket);
    socket.on('pong', () => alive.add(socket));
    // graphql-ws prints every socket error (an oversized frame, a bad UTF-8 frame: the client's doing) with its
    // stack to stderr, past our logs and their bounds. ws closes such a socket itself; we only tell `onSocketError`.
    queueMicrotask(() => {
      socket.removeAllListeners('error');
      socket.on('error', onSocketError);
    });
  });
  let keepAlive: NodeJS.Timeout | undefined;
  const pingAll = () => {
    for (const socket of webSockets.clients) {
      if (!alive.has(socket)) {
        socket.terminate();
        continue;
      }
      alive.delete(socket);
      socket.ping();
    }
  };

  const execute: Executor['execute'] = operationTracing ? (args) => operationTracing.execute(args, executor.execute) : executor.execute;
  const server = useServer(
    {
      connectionInitWaitTimeout: connectionInitTimeoutMs,
      execute: execute as never,
      subscribe: execute as never,
      // Each change's payload is serialised once for every watcher of the same operation and variables.
      onNext: (_context, _id, _payload, _args, result) => payloads.payloadOf(result as ExecutionResult) as never,
      onConnect: async (context) => {
        const socket = context.extra.socket;
        try {
          if (!authenticator) {
            callers.set(context, { credential: credentialFromConnectionParams(context.connectionParams, services.defaultCredential) });
            return true;
          }
          const caller = await authenticator.fromConnectionParams(context.connectionParams);
          // Gone while its token was checked: no timer for a socket that `onClose` has already passed.
          if (socket.readyState !== socket.OPEN) return false;
          callers.set(context, caller);
          // graphql-ws clients answer 4403 by calling `connectionParams` again: a fresh token, a new socket.
          expiries.set(
            context,
            authenticator.atExpiry(caller.user, () => socket.close(4403, 'Token expired')),
          );
          return true;
        } catch (error) {
          const message =
            error instanceof TokenRefusedError
              ? `${error.reason}: ${error.message}`
              : error instanceof UpstreamError
                ? error.message
                : 'Forbidden';
          socket.close(4403, closeReason(message));
          return false;
        }
      },
      onClose: (context) => {
        expiries.get(context)?.();
      },
      onSubscribe: (context, id, params) => {
        if (isTrusted && !isTrusted(params.query)) {
          return [gatewayError('PERSISTED_QUERY_ONLY', 'Only trusted documents run here: this operation is not one of them.')];
        }
        const { document, errors } = executor.prepare(params.query);
        if (errors.length > 0) return [...errors];
        let held = weights.get(context);
        if (!held) {
          held = new Map();
          weights.set(context, held);
        }
        const weight = subscriptionWeight(schema, document, params.operationName, params.variables, MAX_TASKS_PER_SUBSCRIPTION);
        let others = 0;
        for (const [other, weightOf] of held) {
          if (other in context.subscriptions && other !== id) others += weightOf;
          else held.delete(other);
        }
        if (others + weight > maxSubscriptionsPerConnection) {
          return [
            gatewayError(
              'TOO_MANY_SUBSCRIPTIONS',
              `This connection already has ${others} of its ${maxSubscriptionsPerConnection} subscriptions (MAX_SUBSCRIPTIONS_PER_CONNECTION); this one needs ${weight} (tasksUpdated counts one per id).`,
            ),
          ];
        }
        held.set(id, weight);
        const contextValue = createRequestContext(services, callers.get(context)!);
        operationTracing?.continueFrom(contextValue, { ...context.extra.request.headers, ...params.extensions });
        return { schema, document, operationName: params.operationName, variableValues: params.variables, contextValue };
      },
    },
    webSockets,
    // No keep-alive of graphql-ws's own: ours above pings every `keepAliveMs` and drops the silent.
    0,
  );

  return {
    start() {
      httpServer.on('upgrade', onUpgrade);
      keepAlive = setInterval(pingAll, keepAliveMs);
    },
    connections: () => webSockets.clients.size,
    async dispose() {
      httpServer.off('upgrade', onUpgrade);
      clearInterval(keepAlive);
      for (const client of webSockets.clients) client.close(1001, 'Going away');
      await server.dispose();
      await new Promise((resolve) => webSockets.close(resolve));
    },
  };
}

/** A close frame's reason holds at most 123 bytes: longer messages are cut at a character boundary. */
function closeReason(message: string): string {
  if (Buffer.byteLength(message) <= 123) return message;
  let cut = message.slice(0, 120);
  while (Buffer.byteLength(`${cut}…`) > 123) cut = cut.slice(0, -1);
  return `${cut}…`;
}
