import type { IncomingMessage, ServerResponse } from 'node:http';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import type { GraphQLSchema } from 'graphql';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { Authenticator } from '../identity/authenticator.ts';
import { useSubscriptionExpiry } from '../identity/subscription-expiry.ts';
import type { Logger } from '../logger.ts';
import { type ContextServices, createRequestContext, type GatewayContext } from './context.ts';
import { corsFromAllowList, PREFLIGHT_HEADERS, useCrossSiteRequestRefusal, useNoStoredAnswers, useVaryOnOrigin } from './cross-site.ts';
import { gatewayError, maskError } from './errors.ts';
import { exampleOperations } from './graphiql-examples.ts';
import { useHttpDocumentCache } from './http-document-cache.ts';
import { costRules, MAX_TASKS_PER_SUBSCRIPTION } from './limits.ts';
import { type MultipartSubscriptionsOptions, useMultipartSubscriptions } from './multipart-subscriptions.ts';
import { type TrustedDocuments, useAutomaticPersistedQueries, useTrustedDocuments } from './persisted-operations.ts';
import { useSubscriptionWeightLimit } from './subscription-weight.ts';

export type ServerContext = { req: IncomingMessage; res: ServerResponse };
export type GraphQLHttpHandler = YogaServerInstance<ServerContext, GatewayContext>;

export interface GraphQLHttpOptions {
  /** Heartbeat of multipart subscriptions, in ms (`MultipartSubscriptionsOptions.heartbeatMs`). Default: its default. */
  multipartHeartbeatMs?: MultipartSubscriptionsOptions['heartbeatMs'];
  /** When given, only these operations run over HTTP (no APQ registration). Default: none, APQ on. */
  trustedDocuments?: TrustedDocuments | null;
  /** The heaviest subscription one request may hold (`MAX_SUBSCRIPTIONS_PER_CONNECTION`; `tasksUpdated` weighs its ids). Default 100. */
  maxSubscriptionWeight?: number;
  /** Origins whose pages may call from a browser (`CORS_ORIGINS`). Default: none (same origin only). */
  corsOrigins?: readonly string[];
  /** Whether GraphiQL is served to browsers at `/graphql` (`GRAPHIQL`). Default true. */
  graphiql?: boolean;
  /** Renders GraphiQL's page for browsers at `/graphql` (`src/http/graphiql.ts`: a small page, assets served apart). */
  renderGraphiQL: (options: Record<string, unknown>) => Promise<string>;
  /** jwt mode: who is calling, from the `Authorization` header's token. Default null (key mode: the header is an upstream key). */
  authenticator?: Authenticator | null;
  /** More plugins, run first (tracing's operation spans). Default: none. */
  plugins?: readonly Plugin[];
}

/**
 * GraphQL over HTTP and SSE, and GraphiQL, at `/graphql` (graphql-yoga). The
 * key comes from the `Authorization` header; WebSocket operations take their
 * own path (`src/http/websocket-server.ts`) with the same schema, limits and masking.
 */
export function createGraphQLHttpHandler(
  schema: GraphQLSchema,
  services: ContextServices,
  logger: Logger,
  options: GraphQLHttpOptions,
): GraphQLHttpHandler {
  const {
    multipartHeartbeatMs,
    trustedDocuments = null,
    maxSubscriptionWeight = 100,
    corsOrigins = [],
    graphiql = true,
    renderGraphiQL,
    authenticator = null,
    plugins = [],
  } = options;
  const costLimits: Plugin = {
    onValidate({ addValidationRule }) {
      for (const rule of costRules) addValidationRule(rule);
    },
  };
  return createYoga<ServerContext, GatewayContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    logging: false,
    // Ours instead of yoga's: bounded in characters, token-limited, no failures kept (see http-document-cache.ts).
    parserAndValidationCache: false,
    plugins: [
      ...plugins,
      useCrossSiteRequestRefusal(),
      useCSRFPrevention({ requestHeaders: [...PREFLIGHT_HEADERS] }),
      useHttpDocumentCache(),
      costLimits,
      trustedDocuments ? useTrustedDocuments(trustedDocuments) : useAutomaticPersistedQueries({ clientOf: apqClientOf(services) }),
      useSubscriptionWeightLimit(maxSubscriptionWeight, MAX_TASKS_PER_SUBSCRIPTION),
      useMultipartSubscriptions({ heartbeatMs: multipartHeartbeatMs }),
      ...(corsOrigins.length > 0 ? [useVaryOnOrigin()] : []),
      useNoStoredAnswers(),
      ...(authenticator ? [useSubscriptionExpiry(authenticator)] : []),
    ],
    // Never yoga's default, which reflects any Origin with credentials.
    cors: corsFromAllowList(corsOrigins),
    // No file uploads: multipart bodies are refused with the other simple types.
    multipart: false,
    // The body limit is enforced before yoga (http-routes.ts: Content-Length required, at most 256 KiB); yoga's
    // own would pipe every body through a TransformStream, a third of a small request's cost.
    maxRequestBodySize: false,
    maskedErrors: {
      maskError: (error) => {
        const masked = maskError(error);
        if (masked.extensions.code === 'INTERNAL_SERVER_ERROR') logger.error({ err: error }, 'unexpected error, masked');
        return masked;
      },
    },
    graphiql: graphiql && graphiqlOptions(authenticator),
    // A small page; GraphiQL's scripts and styles come from this gateway (src/http/graphiql.ts), no CDN.
    renderGraphiQL: renderGraphiQL as never,
    context: authenticator
      ? ({ request }) => {
          const header = request.headers.get('authorization');
          // A token verified before needs no promise: most requests of a signed-in client.
          const known = authenticator.knownCaller(header);
          if (known) return createRequestContext(services, known);
          return authenticator.fromAuthorization(header).then((caller) => createRequestContext(services, caller), refuse);
        }
      : ({ request }) => createRequestContext(services, request.headers.get('authorization')),
  });
}

/** A refused token as the whole answer: `401` with `WWW-Authenticate` (RFC 6750), the reason in `extensions`. */
function refuse(error: unknown): never {
  const masked = maskError(error);
  throw gatewayError('UNAUTHENTICATED', masked.message, {
    extensions: { ...masked.extensions, http: { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } } },
  });
}

/** GraphiQL's settings; with the development identity provider, its headers hold a fresh development token. */
function graphiqlOptions(authenticator: Authenticator | null) {
  const options = { title: 'task-gateway', defaultQuery: exampleOperations, subscriptionsProtocol: 'WS' as const };
  const devIdentityProvider = authenticator?.devIdentityProvider;
  if (!devIdentityProvider) return options;
  return async () => {
    const { token } = await devIdentityProvider.tokenFor('developer');
    return { ...options, headers: JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2) };
  };
}

/**
 * Who registers an APQ operation: the verified user (jwt mode), or a key the
 * upstream has accepted; any other caller, whose `Authorization` is free to
 * vary, by its remote address.
 */
const apqClientOf =
  (services: ContextServices) =>
  (context: GatewayContext, address: string): string => {
    if (context.user) return `user:${context.user.ownerHash}`;
    try {
      const { hash } = context.credential();
      if (services.acceptedKey?.(hash)) return `key:${hash}`;
    } catch {
      // No key, or a malformed one: the address.
    }
    return `address:${address}`;
  };
