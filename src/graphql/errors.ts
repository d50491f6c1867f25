import { GraphQLError, type GraphQLErrorOptions } from 'graphql';
import type { ErrorCode } from '../error-codes.ts';
import { GatewayError } from '../errors.ts';
import { TokenRefusedError } from '../identity/token-refused-error.ts';
import { BadRequestError, RateLimitedError } from '../upstream/errors.ts';

/**
 * A client-facing GraphQL error: the one way an `extensions.code` is made, from
 * the table in `src/error-codes.ts`. `extensions` adds fields beside the code.
 */
export function gatewayError(
  code: ErrorCode,
  message: string,
  options: Omit<GraphQLErrorOptions, 'extensions'> & { extensions?: Record<string, unknown> } = {},
): GraphQLError {
  return new GraphQLError(message, { ...options, extensions: { ...options.extensions, code } });
}

/** A refusal of the caller's own input, raised before anything is sent upstream. */
export function badUserInput(message: string): GraphQLError {
  return gatewayError('BAD_USER_INPUT', message);
}

/**
 * The one place where failures become client-facing GraphQL errors (yoga's
 * `maskError`, and the WebSocket path's results). Typed errors (`GatewayError`) keep
 * their safe message and their `clientCode`; GraphQL's own errors (validation,
 * `gatewayError`) pass through; anything else is masked, so no stack, key or
 * address can leak.
 */
export function maskError(error: unknown): GraphQLError {
  const graphQLError = error instanceof GraphQLError ? error : null;
  const original = graphQLError?.originalError ?? error;
  const location = { nodes: graphQLError?.nodes, path: graphQLError?.path };
  if (original instanceof GatewayError) {
    const extensions: Record<string, unknown> = {};
    if (original instanceof RateLimitedError && original.retryAfterMs !== null) extensions.retryAfterMs = original.retryAfterMs;
    if (original instanceof BadRequestError && original.upstreamCode) extensions.upstreamCode = original.upstreamCode;
    if (original instanceof TokenRefusedError) extensions.reason = original.reason;
    return gatewayError(original.clientCode, original.message, { ...location, extensions });
  }
  if (original instanceof GraphQLError) {
    return original === graphQLError ? original : new GraphQLError(original.message, { ...location, extensions: original.extensions });
  }
  return gatewayError('INTERNAL_SERVER_ERROR', 'Unexpected error.', location);
}
