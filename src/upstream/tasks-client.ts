import { Agent, type Dispatcher } from 'undici';
import { GatewayError } from '../errors.ts';
import type { Abortable } from '../lib/stop-signal.ts';
import type { Credential } from './credential.ts';
import {
  BadRequestError,
  InsufficientBalanceError,
  RateLimitedError,
  TaskNotCancellableError,
  TaskNotFoundError,
  UnauthenticatedError,
  type UpstreamError,
  UpstreamInvalidError,
  UpstreamUnavailableError,
} from './errors.ts';
import { MAX_IN_FLIGHT, type ScheduleHints } from './request-scheduling.ts';
import { validateTaskId } from './task-id.ts';
import { type CancelOutcome, isRecord, normaliseCancel, normaliseTask, type TaskSnapshot } from './task-snapshot.ts';
import { BoundedAnswer, quotaOf, type RawResponse, retryAfterMs, safeMessage } from './upstream-answers.ts';

export type { CancelOutcome } from './task-snapshot.ts';

/** What `submitTask` sends; `params` are the model-specific fields, spread at the top of the body. */
export interface SubmitTaskRequest {
  model: string;
  action?: string;
  prompt?: string;
  params?: Record<string, unknown>;
  callbackUrl?: string;
  /** Sent as `Idempotency-Key`: a repeat within 24 h returns the original task. */
  idempotencyKey?: string;
  /** Sent as `Prefer: wait=N` (0 to 60): the upstream holds the answer up to N seconds. */
  waitSeconds?: number;
}

export interface RequestOptions extends ScheduleHints {
  /** Aborts the request; the promise then rejects with the signal's reason. */
  signal?: Abortable;
}

export interface TasksClient {
  /** `GET /tasks/{id}`. */
  getTask(id: string, credential: Credential, options?: RequestOptions): Promise<TaskSnapshot>;
  /** `POST /tasks`. */
  submitTask(request: SubmitTaskRequest, credential: Credential, options?: RequestOptions): Promise<TaskSnapshot>;
  /** `POST /tasks/{id}/cancel`. */
  cancelTask(id: string, credential: Credential, options?: RequestOptions): Promise<CancelOutcome>;
  /** Whether the upstream answers HTTP at all (any status below 500), without a key. */
  probe(): Promise<boolean>;
  /**
   * Closes the client's own connection pool (not an injected dispatcher),
   * aborting requests still in flight: at shutdown nobody waits for them, and
   * one the upstream never answers must not hold the exit.
   */
  close(): Promise<void>;
}

export interface TasksClientOptions {
  /** The upstream base URL including its version path, e.g. `https://api.qingbo.ai/v1`. */
  baseUrl: string;
  /** Deadline for one request: connect, headers and body. Default 10 000 ms. */
  timeoutMs?: number;
  /** Largest response body read. Default 1 MiB; a larger one is `UpstreamInvalidError`. */
  maxBodyBytes?: number;
  /** The pool to send through; default: a keep-alive `Agent` owned (and closed) by the client. */
  dispatcher?: Dispatcher;
  /**
   * Connections of the default `Agent` to the upstream. Default `MAX_IN_FLIGHT` (128), the request
   * scheduler's bound: keep it at least the scheduler's `maxInFlight`, so that a sent request never
   * waits for a connection inside the pool.
   */
  maxConnections?: number;
  /** Clock for `reset_at`. Default `Date.now`. */
  now?: () => number;
  /** Told of every request's end: endpoint (`get`, `submit`, `cancel`), outcome (`ok` or the error's code), seconds. */
  onRequest?: (endpoint: string, outcome: string, seconds: number) => void;
  /** Told of each result link dropped because it is not an absolute http(s) URL: the task and the link's scheme. Default: nothing. */
  onDroppedUrl?: (taskId: string, scheme: string) => void;
  /** Traces each exchange (`src/telemetry`): its headers are added to the request. Default: none, and nothing is spent on tracing. */
  trace?: ExchangeTracer;
}

/** How an exchange is traced: begun as it is dispatched, ended with its status (null: no answer). */
export interface ExchangeTracer {
  /** `template` is the path with `{id}` for the task id (`/v1/tasks/{id}`); answers the headers to send with it. */
  begin(method: string, template: string, path: string): TracedExchange;
}
export interface TracedExchange {
  readonly headers: Readonly<Record<string, string>>;
  end(status: number | null, error?: unknown): void;
  /** Runs `fn` (reading the answer) in the context the request was made in. */
  within<T>(fn: () => T): T;
}

/** An exchange sent (or refused before sending): its answer, and its trace when traced. */
type Sent = Pick<BoundedAnswer, 'promise' | 'traced'>;

/** Creates the undici client of the upstream Task API. */
export function createTasksClient(options: TasksClientOptions): TasksClient {
  const {
    baseUrl,
    timeoutMs = 10_000, // 10 s
    maxBodyBytes = 1 << 20, // 1 MiB
    dispatcher: injected,
    maxConnections = MAX_IN_FLIGHT,
    now = Date.now,
    onRequest,
    onDroppedUrl,
    trace,
  } = options;
  const base = new URL(baseUrl);
  const origin = base.origin;
  const basePath = base.pathname.replace(/\/+$/, '');
  const dispatcher = injected ?? new Agent({ keepAliveTimeout: 30_000, connections: maxConnections, connect: { timeout: timeoutMs } });

  const taskPath = (id: string) => `${basePath}/tasks/${encodeURIComponent(validateTaskId(id))}`;
  const templates = { tasks: `${basePath}/tasks`, task: `${basePath}/tasks/{id}`, cancel: `${basePath}/tasks/{id}/cancel` };

  /** One exchange with the upstream: its answer rejects with the caller's reason, or an `UpstreamError`. */
  function send(
    method: 'GET' | 'POST',
    template: string,
    path: string,
    credential: Credential,
    signal: Abortable | undefined,
    body?: unknown,
    headers?: Record<string, string>,
    extraMs = 0,
  ): Sent {
    if (signal?.aborted) return { promise: Promise.reject(signal.reason) };
    const deadlineMs = timeoutMs + extraMs;
    // Before the answer exists (its timer and its listener): a body that cannot be serialised leaves nothing behind.
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const traced = trace?.begin(method, template, path);
    const answer = new BoundedAnswer(maxBodyBytes, deadlineMs, signal, traced);
    const requestHeaders: Record<string, string> =
      body === undefined
        ? { authorization: `Bearer ${credential.apiKey}`, accept: 'application/json' }
        : { authorization: `Bearer ${credential.apiKey}`, accept: 'application/json', 'content-type': 'application/json', ...headers };
    // Added one by one: spreading the trace's headers into the literal would cost a poll more than the rest of this function.
    if (traced) for (const name in traced.headers) requestHeaders[name] = traced.headers[name]!;
    dispatcher.dispatch(
      { origin, path, method, headersTimeout: deadlineMs, bodyTimeout: deadlineMs, headers: requestHeaders, body: payload },
      answer,
    );
    return answer;
  }

  /** Turns a non-2xx answer into its typed error. */
  function failure(response: RawResponse, credential: Credential, taskId?: string): UpstreamError {
    const { status } = response;
    const error = isRecord(response.body) && isRecord(response.body.error) ? response.body.error : {};
    const code = typeof error.code === 'string' || typeof error.code === 'number' ? String(error.code) : null;
    const message = safeMessage(error.message, credential);
    if (status === 400 && code === 'task_not_cancellable' && taskId) return new TaskNotCancellableError(taskId);
    if (status === 400 || status === 422) return new BadRequestError(message ?? 'The upstream refused the request.', code);
    if (status === 401 || status === 403) return new UnauthenticatedError('The upstream rejected the API key.');
    if (status === 402) return new InsufficientBalanceError('The API key has insufficient balance for this task.');
    if (status === 404 && taskId) return new TaskNotFoundError(taskId);
    if (status === 429) {
      const waitMs = retryAfterMs(response, now());
      return new RateLimitedError(
        waitMs === null
          ? 'The upstream is rate limiting requests.'
          : `The upstream is rate limiting requests; retry in ${Math.ceil(waitMs / 1000)} s.`,
        waitMs,
        quotaOf(response.body),
      );
    }
    if (status >= 500) return new UpstreamUnavailableError(`The upstream failed with status ${status}.`);
    return new UpstreamInvalidError(`The upstream answered with unexpected status ${status}.`);
  }

  function taskFrom(response: RawResponse, credential: Credential, taskId?: string): TaskSnapshot {
    if (response.status < 200 || response.status >= 300) throw failure(response, credential, taskId);
    return normaliseTask(response.body, (scheme) => onDroppedUrl?.(isRecord(response.body) ? String(response.body.task_id) : '', scheme));
  }

  /**
   * Reads an exchange's answer with `read` and reports the call's outcome and duration (from
   * `started`) to `onRequest`: one step per call, since a poll is a call. A traced exchange's answer
   * is read in its request's context.
   */
  function finish<T>(endpoint: string, started: number, exchange: Sent, read: (response: RawResponse) => T): Promise<T> {
    const report = (outcome: string) => onRequest?.(endpoint, outcome, (performance.now() - started) / 1000);
    const { traced } = exchange;
    return exchange.promise.then(
      (response) => {
        let result: T;
        try {
          result = traced ? traced.within(() => read(response)) : read(response);
        } catch (error) {
          report(error instanceof GatewayError ? error.code : 'ABORTED');
          throw error;
        }
        report('ok');
        return result;
      },
      (error: unknown) => {
        report(error instanceof GatewayError ? error.code : 'ABORTED');
        throw error;
      },
    );
  }

  return {
    getTask(id, credential, { signal } = {}) {
      let path: string;
      try {
        path = taskPath(id);
      } catch (error) {
        // Invalid ids never count as requests.
        return Promise.reject(error);
      }
      return finish('get', performance.now(), send('GET', templates.task, path, credential, signal), (response) =>
        taskFrom(response, credential, id),
      );
    },

    async probe() {
      try {
        const response = await dispatcher.request({
          origin,
          path: `${basePath}/tasks/readiness-probe`,
          method: 'GET',
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body.dump();
        return response.statusCode < 500;
      } catch {
        return false;
      }
    },

    async submitTask(request, credential, { signal } = {}) {
      const { model, action, prompt, params = {}, callbackUrl, idempotencyKey, waitSeconds = 0 } = request;
      const headers: Record<string, string> = {};
      if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
      if (waitSeconds > 0) headers.prefer = `wait=${waitSeconds}`;
      const body = { ...params, model, action, prompt, callback_url: callbackUrl };
      const exchange = send('POST', templates.tasks, `${basePath}/tasks`, credential, signal, body, headers, waitSeconds * 1000);
      return finish('submit', performance.now(), exchange, (response) => taskFrom(response, credential));
    },

    async cancelTask(id, credential, { signal } = {}) {
      const path = `${taskPath(id)}/cancel`;
      return finish('cancel', performance.now(), send('POST', templates.cancel, path, credential, signal), (response) => {
        if (response.status < 200 || response.status >= 300) throw failure(response, credential, id);
        return normaliseCancel(response.body, id);
      });
    },

    async close() {
      if (!injected) await dispatcher.destroy();
    },
  };
}
