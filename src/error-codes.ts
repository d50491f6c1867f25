/**
 * Every `extensions.code` a client can receive, with when it is sent: the one
 * table of client-facing error codes. Typed upstream errors name theirs
 * (`GatewayError.clientCode`), GraphQL errors are built from it by
 * `src/graphql/errors.ts`, and a test holds the README's error table to it.
 */
export const errorCodes = {
  BAD_USER_INPUT:
    'invalid task id, more than 100 ids, bad `SubmitTaskInput`, an operation past a limit (depth, aliases, upstream requests), or the upstream refused the parameters (`extensions.upstreamCode`, e.g. `capability_violation`)',
  GRAPHQL_PARSE_FAILED: 'an operation that is not valid GraphQL, or too long, over WebSocket',
  UNAUTHENTICATED:
    'no key (and no `UPSTREAM_API_KEY`), a malformed `Authorization`, or a key the upstream rejects; in jwt mode, a refused or expired token (`extensions.reason` says why: [end users](end-users.md#refusals))',
  NOT_FOUND: "a task that does not exist or is not the caller's, on a subscription (queries answer `null`)",
  TASK_NOT_CANCELLABLE: 'a cancel that lost the race: the task is no longer queued',
  INSUFFICIENT_BALANCE: 'upstream `402`',
  RATE_LIMITED:
    "upstream `429` that could not be waited out, or a request the key's budget could not send within `UPSTREAM_QUEUE_TIMEOUT_MS` (or past its queue bound); `extensions.retryAfterMs` when known",
  UPSTREAM_UNAVAILABLE: 'upstream 5xx, connection refused or reset',
  TIMEOUT:
    "no complete answer within `UPSTREAM_TIMEOUT_MS` of being sent, a request that waited `UPSTREAM_QUEUE_TIMEOUT_MS` in its key's queue unsent (the message says which), or a watched task that did not end within `POLL_TIMEOUT_MS`",
  UPSTREAM_INVALID: 'a body that is not a task (truncated or wrongly shaped JSON)',
  TOO_MANY_SUBSCRIPTIONS:
    'a WebSocket already holds `MAX_SUBSCRIPTIONS_PER_CONNECTION` subscriptions, or one SSE or multipart subscription weighs more (`tasksUpdated(ids)` counts one per id), or a new watched task past `MAX_LOOPS_PER_KEY` or `MAX_LOOPS` (queries are still answered)',
  SERVICE_UNAVAILABLE:
    '`recentTasks` while its store (Redis) is unreachable; submissions still succeed, unrecorded. In jwt mode, while task owners or per-user limits (Redis) are unreachable: a submit is refused before the upstream, or (Redis lost mid-submit, past 15 s of retries) answered with `extensions.idempotencyKey` to submit again with; a read or watch answers it rather than guess an owner',
  PERSISTED_QUERY_NOT_FOUND:
    'APQ: the hash is not (or no longer) known, send the operation text with it; with `TRUSTED_DOCUMENTS`: not one of them (`400`)',
  PERSISTED_QUERY_MISMATCH: 'APQ: the operation text does not have the sha-256 it was sent with',
  PERSISTED_QUERY_ONLY: 'with `TRUSTED_DOCUMENTS` set: operation text instead of a `documentId` or `sha256Hash` (`400`)',
  INTERNAL_SERVER_ERROR: 'anything unexpected; the details stay masked',
} as const;

export type ErrorCode = keyof typeof errorCodes;
