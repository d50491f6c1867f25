import { GraphQLError } from 'graphql';
import {
  BadRequestError,
  InsufficientBalanceError,
  InvalidTaskIdError,
  PollTimeoutError,
  RateLimitedError,
  TaskNotCancellableError,
  TaskNotFoundError,
  UnauthenticatedError,
  UpstreamError,
  UpstreamInvalidError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../upstream/errors.ts';

/** A refusal of the caller's own input, raised before anything is sent upstream. */
export function badUserInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

/** `extensions.code` for each typed upstream failure. */
function codeOf(error: UpstreamError): string {
  if (error instanceof InvalidTaskIdError || error instanceof BadRequestError) return 'BAD_USER_INPUT';
  if (error instanceof TaskNotFoundError) return 'NOT_FOUND';
  if (error instanceof UnauthenticatedError) return 'UNAUTHENTICATED';
  if (error instanceof TaskNotCancellableError) return 'TASK_NOT_CANCELLABLE';
  if (error instanceof InsufficientBalanceError) return 'INSUFFICIENT_BALANCE';
  if (error instanceof RateLimitedError) return 'RATE_LIMITED';
  if (error instanceof UpstreamTimeoutError || error instanceof PollTimeoutError) return 'TIMEOUT';
  if (error instanceof UpstreamUnavailableError) return 'UPSTREAM_UNAVAILABLE';
  if (error instanceof UpstreamInvalidError) return 'UPSTREAM_INVALID';
  return error.code;
}

/**
 * The one place where failures become client-facing GraphQL errors (yoga's
 * `maskError`). Typed upstream errors keep their safe message and get an
 * `extensions.code`; GraphQL's own errors (validation, `badUserInput`) pass
 * through; anything else is masked, so no stack, key or address can leak.
 */
export function maskError(error: unknown): GraphQLError {
  const graphQLError = error instanceof GraphQLError ? error : null;
  const original = graphQLError?.originalError ?? error;
  const location = { nodes: graphQLError?.nodes, path: graphQLError?.path };
  if (original instanceof UpstreamError) {
    const extensions: Record<string, unknown> = { code: codeOf(original) };
    if (original instanceof RateLimitedError && original.retryAfterMs !== null) extensions.retryAfterMs = original.retryAfterMs;
    if (original instanceof BadRequestError && original.upstreamCode) extensions.upstreamCode = original.upstreamCode;
    return new GraphQLError(original.message, { ...location, extensions });
  }
  if (original instanceof GraphQLError) {
    return original === graphQLError ? original : new GraphQLError(original.message, { ...location, extensions: original.extensions });
  }
  return new GraphQLError('Unexpected error.', { ...location, extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}
