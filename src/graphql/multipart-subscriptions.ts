import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';

export interface MultipartSubscriptionsOptions {
  /** How often an idle stream sends a heartbeat part (`{}`), in ms. Default 5 000 (Apollo Router's). */
  heartbeatMs?: number;
}

/** The boundary of every part; Apollo Client reads it from the content type. */
const BOUNDARY = 'graphql';
const CONTENT_TYPE = `multipart/mixed;boundary="${BOUNDARY}";subscriptionSpec="1.0"`;

/** Whether the `Accept` header asks for Apollo's multipart subscriptions (`multipart/mixed;...;subscriptionSpec=1.0`). */
export function acceptsMultipartSubscriptions(accept: string | null): boolean {
  return (accept ?? '').split(',').some((type) => /^\s*multipart\/mixed\s*;/i.test(type) && /subscriptionspec\s*=\s*"?1\.0"?/i.test(type));
}

/**
 * Subscriptions over HTTP multipart, Apollo's protocol: one part per event,
 * `{"payload": <result>}`, a `{}` heartbeat part while the stream is idle, and
 * the closing boundary when the subscription completes. Yoga's own multipart
 * processor serves only non-subscription results (`@defer`), so this one takes
 * over, through `onResultProcess`, for subscription streams whose request asked
 * for it; anything else (a query, an error before the stream) keeps yoga's.
 * The client leaving cancels the stream, which ends the subscription.
 */
export function useMultipartSubscriptions(options: MultipartSubscriptionsOptions = {}): Plugin {
  const { heartbeatMs = 5_000 } = options; // 5 s
  return {
    onResultProcess({ request, result, setResultProcessor }) {
      if (!isAsyncIterable(result) || !acceptsMultipartSubscriptions(request.headers.get('accept'))) return;
      setResultProcessor(
        (stream, fetchAPI) => multipartResponse(stream as AsyncIterable<ExecutionResult>, fetchAPI, heartbeatMs),
        'multipart/mixed',
      );
    },
  };
}

function multipartResponse(
  stream: AsyncIterable<ExecutionResult>,
  fetchAPI: { ReadableStream: typeof ReadableStream; Response: typeof Response; TextEncoder: typeof TextEncoder },
  heartbeatMs: number,
): Response {
  const encoder = new fetchAPI.TextEncoder();
  const iterator = stream[Symbol.asyncIterator]();
  const part = (json: string) => encoder.encode(`\r\ncontent-type: application/json; charset=utf-8\r\n\r\n${json}\r\n--${BOUNDARY}`);
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let open = true;
  const finish = () => {
    open = false;
    clearInterval(heartbeat);
  };
  const body = new fetchAPI.ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`\r\n--${BOUNDARY}`));
      // Each part is one chunk, so a heartbeat never lands inside an event.
      heartbeat = setInterval(() => {
        if (open) controller.enqueue(part('{}'));
      }, heartbeatMs);
    },
    async pull(controller) {
      try {
        const step = await iterator.next();
        if (!open) return;
        if (step.done) {
          finish();
          controller.enqueue(encoder.encode('--\r\n'));
          controller.close();
          return;
        }
        controller.enqueue(part(JSON.stringify({ payload: withoutInternals(step.value) })));
      } catch {
        if (!open) return;
        finish();
        // A transport-level failure, in the protocol's words: no payload, errors beside it.
        controller.enqueue(part(JSON.stringify({ payload: null, errors: [{ message: 'The subscription failed.' }] })));
        controller.enqueue(encoder.encode('--\r\n'));
        controller.close();
      }
    },
    async cancel() {
      finish();
      await iterator.return?.();
    },
  });
  return new fetchAPI.Response(body, {
    status: 200,
    headers: { 'content-type': CONTENT_TYPE, 'cache-control': 'no-cache', connection: 'keep-alive' },
  });
}

/** The result as a client sees it: yoga's own `extensions.http` hints are not for the wire. */
function withoutInternals(result: ExecutionResult): unknown {
  if (!result.errors) return result;
  return {
    ...result,
    errors: result.errors.map((error) => {
      const { http: _http, ...extensions } = (error.extensions ?? {}) as Record<string, unknown>;
      return { ...error.toJSON(), extensions };
    }),
  };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
