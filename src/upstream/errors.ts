import { GatewayError } from '../errors.ts';

/**
 * Typed failures of the upstream Task API (and of what the caller brings for it:
 * a task id, a key), one class per failure, `GatewayError`s like the gateway's
 * own refusals (`src/errors.ts`), mapped to GraphQL errors in `src/graphql/errors.ts`.
 */
export class UpstreamError extends GatewayError {
  override readonly code: string = 'UPSTREAM_ERROR';
}

/** A task id that the gateway refuses before any request is made. */
export class InvalidTaskIdError extends UpstreamError {
  override readonly code = 'INVALID_TASK_ID';
  override readonly clientCode = 'BAD_USER_INPUT';
}

/** `404 task_not_found`: the task does not exist, or belongs to another key. */
export class TaskNotFoundError extends UpstreamError {
  override readonly code = 'TASK_NOT_FOUND';
  override readonly clientCode = 'NOT_FOUND';
  constructor(readonly taskId: string) {
    super(`Task ${JSON.stringify(taskId)} was not found.`);
  }
}

/** `401`, or no key at all: the caller must bring a valid API key. */
export class UnauthenticatedError extends UpstreamError {
  override readonly code = 'UNAUTHENTICATED';
  override readonly clientCode = 'UNAUTHENTICATED';
}

/** `400 task_not_cancellable`: the task already left `queued` (the normal race). */
export class TaskNotCancellableError extends UpstreamError {
  override readonly code = 'TASK_NOT_CANCELLABLE';
  override readonly clientCode = 'TASK_NOT_CANCELLABLE';
  constructor(readonly taskId: string) {
    super(`Task ${JSON.stringify(taskId)} can no longer be cancelled: it is no longer queued.`);
  }
}

/** `400` for any other reason: the request's parameters were refused upstream. */
export class BadRequestError extends UpstreamError {
  override readonly code = 'BAD_REQUEST';
  override readonly clientCode = 'BAD_USER_INPUT';
  constructor(
    message: string,
    /** The upstream's own error code, e.g. `capability_violation`. */
    readonly upstreamCode: string | null = null,
  ) {
    super(message);
  }
}

/** `402`: the key's balance does not cover the task. */
export class InsufficientBalanceError extends UpstreamError {
  override readonly code = 'INSUFFICIENT_BALANCE';
  override readonly clientCode = 'INSUFFICIENT_BALANCE';
}

/** What a quota 429 said about the key's allowance: `cap` requests per `windowMs`. */
export interface UpstreamQuota {
  cap: number;
  windowMs: number;
}

/**
 * `429`: rate limited or quota window exhausted upstream; or the gateway's own
 * budget for the key cannot send the request in time (`fromUpstream` false).
 */
export class RateLimitedError extends UpstreamError {
  override readonly code = 'RATE_LIMITED';
  override readonly clientCode = 'RATE_LIMITED';
  override readonly transient = true;
  constructor(
    message: string,
    /** How long to wait (`Retry-After`, `reset_at`, or the gateway's own estimate), when known. */
    readonly retryAfterMs: number | null,
    /** The key's quota, when the 429's body gave `cap` and `window`. */
    readonly quota: UpstreamQuota | null = null,
    /** True when the upstream answered 429; false when the gateway refused before sending. */
    readonly fromUpstream = true,
  ) {
    super(message);
  }
}

/** 5xx, connection refused or reset: the upstream cannot answer now. */
export class UpstreamUnavailableError extends UpstreamError {
  override readonly code = 'UPSTREAM_UNAVAILABLE';
  override readonly clientCode = 'UPSTREAM_UNAVAILABLE';
  override readonly transient = true;
}

/** No complete answer within `UPSTREAM_TIMEOUT_MS`. */
export class UpstreamTimeoutError extends UpstreamError {
  override readonly code = 'UPSTREAM_TIMEOUT';
  override readonly clientCode = 'TIMEOUT';
  override readonly transient = true;
}

/** A body that is not JSON, or JSON of the wrong shape. */
export class UpstreamInvalidError extends UpstreamError {
  override readonly code = 'UPSTREAM_INVALID';
  override readonly clientCode = 'UPSTREAM_INVALID';
  override readonly transient = true;
}
