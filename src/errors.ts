import type { ErrorCode } from './error-codes.ts';

/**
 * A typed failure the gateway reports, one class per failure, each with a
 * stable `code` (after undici's `lib/core/errors.js`). Messages are safe to show
 * to the caller: they never carry an API key, a stack or an internal address.
 * Each names the `extensions.code` its callers see (`clientCode`, from the one
 * table in `src/error-codes.ts`); `code` stays finer, for metrics and logs.
 * They become GraphQL errors in one place: `src/graphql/errors.ts`. The
 * upstream's failures are `UpstreamError`s (`src/upstream/errors.ts`); the
 * gateway's own refusals are below.
 */
export class GatewayError extends Error {
  readonly code: string = 'GATEWAY_ERROR';
  /** The `extensions.code` a client sees. */
  readonly clientCode: ErrorCode = 'INTERNAL_SERVER_ERROR';
  /** Whether the same request may succeed later (pollers back off and retry). */
  readonly transient: boolean = false;
  /** The class's own name (`TaskNotFoundError`), for every subclass without restating it. */
  override name = this.constructor.name;
}

/** A request waited longer than its bound in the gateway's own queue for the key's budget, and was never sent. */
export class QueueTimeoutError extends GatewayError {
  override readonly code = 'QUEUE_TIMEOUT';
  override readonly clientCode = 'TIMEOUT';
  override readonly transient = true;
}

/** A poll loop cap (`MAX_LOOPS_PER_KEY`, `MAX_LOOPS`) refused a new watched task. */
export class TooManySubscriptionsError extends GatewayError {
  override readonly code = 'TOO_MANY_SUBSCRIPTIONS';
  override readonly clientCode = 'TOO_MANY_SUBSCRIPTIONS';
}

/** A watched task did not end within `POLL_TIMEOUT_MS`. */
export class PollTimeoutError extends GatewayError {
  override readonly code = 'POLL_TIMEOUT';
  override readonly clientCode = 'TIMEOUT';
}
