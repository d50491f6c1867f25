import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendJson } from '../lib/send-json.ts';
import { badRequest, isHttpUrlList, notFound, readJson, sendFile, taskNotFound, waitSeconds } from './http-answers.ts';
import { createRateLimiter, type RateLimiter, type RateLimitOptions } from './rate-limit.ts';
import { type EmulatedTask, failureFromPrompt, isTerminalStatus, stateAt } from './task-store.ts';
import { costOf, toWire, type WireFormat } from './wire-format.ts';

export interface EmulatorOptions {
  /** Which documented wire format to answer in. Default `newer`. */
  wireFormat?: WireFormat;
  /** How long a task stays `queued`. Default 3 000 ms. */
  queuedMs?: number;
  /** How long a task is `processing`. Default 12 000 ms. */
  processingMs?: number;
  /** Which keys are valid; others answer `401`. Default: any key starting with `sk-`. */
  isValidKey?: (apiKey: string) => boolean;
  /** Clock, in ms. Default `Date.now`. */
  now?: () => number;
  /** How often callbacks for newly ended tasks are sent. Default 100 ms. */
  sweepIntervalMs?: number;
  /**
   * Share of `GET /tasks/{id}` answered with a random fault instead (500, 429,
   * a truncated body, a reset connection, or no answer for `hangMs`). Default 0.
   */
  faultRate?: number;
  /** How long a hanging fault holds its request. Default 2 000 ms. */
  hangMs?: number;
  /** Random source for faults. Default `Math.random`. */
  random?: () => number;
  /** A per-key quota (`429 quota_window_exceeded` past `cap` per window). Default: none. */
  rateLimit?: RateLimitOptions | null;
}

export interface EmulatorStats {
  /** `GET /tasks/{id}` requests, by task id. */
  gets: Map<string, number>;
  submits: number;
  cancels: number;
  callbacks: number;
  /** GETs answered with an injected fault. */
  faults: number;
  /** Requests to `/v1/tasks...`, whatever their answer (401 and 429 included). */
  requests: number;
  /** Requests refused with `429 quota_window_exceeded`, by API key. */
  rateLimited: Map<string, number>;
}

export interface Emulator {
  /** The base URL including `/v1`, once started. */
  readonly url: string;
  readonly stats: EmulatorStats;
  /** Listens on `port` (default 0: any free port) of `host` (default 127.0.0.1). */
  start(port?: number, host?: string): Promise<string>;
  stop(): Promise<void>;
  /** Forces a task into `status` (any string, known or not) with `progress`, until released. */
  pin(taskId: string, status: string, progress?: number): void;
  /** The `callback_url` a task was submitted with, or null. */
  callbackUrlOf(taskId: string): string | null;
  /** Lets a pinned task follow the clock again. */
  release(taskId: string): void;
  /** Sends the callbacks of tasks that have ended since the last sweep. */
  sweep(): Promise<void>;
  /** Replaces the per-key quota from now on (null: none). */
  setRateLimit(options: RateLimitOptions | null): void;
  resetStats(): void;
}

const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000; // 24 h

/** Creates an emulator of the upstream Task API (UPSTREAM.md). Nothing listens until `start()`. */
export function createEmulator(options: EmulatorOptions = {}): Emulator {
  const {
    wireFormat = 'newer',
    queuedMs = 3_000, // 3 s
    processingMs = 12_000, // 12 s
    isValidKey = (apiKey: string) => apiKey.startsWith('sk-'),
    now = Date.now,
    sweepIntervalMs = 100, // 0.1 s
    faultRate = 0,
    hangMs = 2_000, // 2 s
    random = Math.random,
  } = options;
  let limiter: RateLimiter | null = options.rateLimit ? createRateLimiter(options.rateLimit) : null;
  const tasks = new Map<string, EmulatedTask>();
  const awaitingCallback = new Set<EmulatedTask>();
  const idempotency = new Map<string, { taskId: string; at: number }>();
  const stats: EmulatorStats = { gets: new Map(), submits: 0, cancels: 0, callbacks: 0, faults: 0, requests: 0, rateLimited: new Map() };
  const server = createServer((request, response) => {
    handle(request, response).catch(() => {
      if (!response.headersSent) sendJson(response, 500, { error: { message: 'internal error', code: 'internal_error' } });
      else response.destroy();
    });
  });
  let baseUrl = '';
  let sweeper: NodeJS.Timeout | undefined;

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://emulator');
    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (request.method === 'GET' && segments[0] === 'files') return sendFile(response, segments[2] ?? '');
    if (segments[0] !== 'v1' || segments[1] !== 'tasks') return notFound(response, 'not_found', 'No such endpoint.');
    stats.requests += 1;
    const apiKey = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (!apiKey || !isValidKey(apiKey)) {
      return sendJson(response, 401, { error: { message: 'Invalid API key.', code: 'invalid_api_key', type: 'authentication_error' } });
    }
    const verdict = limiter?.check(apiKey, now());
    if (verdict && !verdict.allowed) {
      stats.rateLimited.set(apiKey, (stats.rateLimited.get(apiKey) ?? 0) + 1);
      request.resume();
      return void response.writeHead(429, { 'content-type': 'application/json', ...verdict.headers }).end(JSON.stringify(verdict.body));
    }
    const [, , id, verb] = segments;
    if (request.method === 'POST' && segments.length === 2) return submit(request, response, apiKey, waitSeconds(request));
    if (request.method === 'POST' && id === 'sync' && segments.length === 3) return submit(request, response, apiKey, 60);
    if (request.method === 'GET' && id && segments.length === 3) {
      stats.gets.set(id, (stats.gets.get(id) ?? 0) + 1);
      if (faultRate > 0 && random() < faultRate) return injectFault(response);
      const task = owned(id, apiKey);
      return task ? sendJson(response, 200, wire(task)) : taskNotFound(response);
    }
    if (request.method === 'POST' && id && verb === 'cancel' && segments.length === 4) {
      stats.cancels += 1;
      const task = owned(id, apiKey);
      if (!task) return taskNotFound(response);
      const at = now();
      if (stateAt(task, at).status !== 'queued') {
        return sendJson(response, 400, { error: { message: 'Only a queued task can be cancelled.', code: 'task_not_cancellable' } });
      }
      task.cancelledAt = at;
      return sendJson(response, 200, { task_id: task.id, status: 'cancelled', refunded: true, refunded_quota: costOf(task) });
    }
    return notFound(response, 'not_found', 'No such endpoint.');
  }

  async function submit(request: IncomingMessage, response: ServerResponse, apiKey: string, waitFor: number): Promise<void> {
    stats.submits += 1;
    const body = await readJson(request);
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return badRequest(response, 'invalid_request', 'The body must be a JSON object.');
    const { model, action = 'generate', prompt = '', callback_url: callbackUrl, extra, ...params } = body as Record<string, unknown>;
    if (typeof model !== 'string' || model === '') return badRequest(response, 'invalid_request', 'model is required.', 'model');
    if (typeof action !== 'string' || typeof prompt !== 'string')
      return badRequest(response, 'invalid_request', 'action and prompt must be strings.');
    if (extra !== undefined && extra !== null && !(typeof extra === 'object' && Object.keys(extra).length === 0)) {
      return badRequest(response, 'capability_violation', 'The extra field is not supported.', 'extra');
    }
    if (params.image_urls !== undefined && !isHttpUrlList(params.image_urls)) {
      return badRequest(response, 'invalid_request', 'image_urls must be public http(s) URLs.', 'image_urls');
    }
    if (callbackUrl !== undefined && callbackUrl !== null && !isHttpUrlList([callbackUrl])) {
      return badRequest(response, 'invalid_request', 'callback_url must be an http(s) URL.', 'callback_url');
    }
    const at = now();
    const idempotencyKey = request.headers['idempotency-key'];
    const remembered = typeof idempotencyKey === 'string' ? idempotency.get(`${apiKey}\0${idempotencyKey}`) : undefined;
    let task = remembered && at - remembered.at < IDEMPOTENCY_WINDOW_MS ? tasks.get(remembered.taskId) : undefined;
    if (!task) {
      task = {
        id: `task-${randomUUID()}`,
        owner: apiKey,
        model,
        action,
        prompt,
        params,
        callbackUrl: typeof callbackUrl === 'string' ? callbackUrl : null,
        createdAt: at,
        queuedMs,
        processingMs,
        failure: failureFromPrompt(prompt),
        cancelledAt: null,
        pinned: null,
      };
      tasks.set(task.id, task);
      if (task.callbackUrl) awaitingCallback.add(task);
      if (typeof idempotencyKey === 'string') idempotency.set(`${apiKey}\0${idempotencyKey}`, { taskId: task.id, at });
    }
    if (waitFor > 0) await waitForEnd(task, waitFor * 1000, request);
    sendJson(response, 200, { ...wire(task), pre_consumed_cost: costOf(task) });
  }

  /** `Prefer: wait=N` holds the answer until the task ends or N seconds pass (real time). */
  async function waitForEnd(task: EmulatedTask, maxMs: number, request: IncomingMessage): Promise<void> {
    const until = Date.now() + maxMs;
    while (!isTerminalStatus(stateAt(task, now()).status) && Date.now() < until && !request.socket.destroyed) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(25, until - Date.now())));
    }
  }

  function injectFault(response: ServerResponse): void {
    stats.faults += 1;
    const fault = Math.floor(random() * 5);
    if (fault === 0) {
      sendJson(response, 500, { error: { message: 'Injected fault.', code: 'internal_error' } });
      return;
    }
    if (fault === 1)
      return void response
        .writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' })
        .end('{"error":{"message":"Injected rate limit.","code":"rate_limited"}}');
    if (fault === 2) return void response.writeHead(200, { 'content-type': 'application/json' }).end('{"task_id":"task-');
    if (fault === 3) return void response.socket?.destroy();
    const timer = setTimeout(() => response.socket?.destroy(), hangMs);
    response.on('close', () => clearTimeout(timer));
  }

  function owned(id: string, apiKey: string): EmulatedTask | undefined {
    const task = tasks.get(id);
    // Another key's task is indistinguishable from a missing one.
    return task && task.owner === apiKey ? task : undefined;
  }

  const wire = (task: EmulatedTask) => toWire(task, now(), wireFormat, baseUrl);

  async function sweep(): Promise<void> {
    const at = now();
    // Only tasks still owing a callback are looked at, not every task ever submitted.
    const due = [...awaitingCallback].filter((task) => isTerminalStatus(stateAt(task, at).status));
    for (const task of due) awaitingCallback.delete(task);
    await Promise.all(
      due.map(async (task) => {
        stats.callbacks += 1;
        try {
          const answer = await fetch(task.callbackUrl!, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(wire(task)),
            signal: AbortSignal.timeout(5_000),
          });
          await answer.arrayBuffer();
        } catch {
          // Callbacks are best effort, as upstream's are: polling is the fallback.
        }
      }),
    );
  }

  return {
    get url() {
      return baseUrl;
    },
    stats,
    async start(port = 0, host = '127.0.0.1') {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      const address = server.address() as AddressInfo;
      const hostname = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      baseUrl = `http://${hostname === '0.0.0.0' ? '127.0.0.1' : hostname}:${address.port}/v1`;
      sweeper = setInterval(() => void sweep(), sweepIntervalMs);
      sweeper.unref();
      return baseUrl;
    },
    async stop() {
      clearInterval(sweeper);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    pin(taskId, status, progress = 0) {
      const task = tasks.get(taskId);
      if (!task) throw new Error(`No task ${taskId}`);
      task.pinned = { status, progress, at: now() };
    },
    callbackUrlOf(taskId) {
      return tasks.get(taskId)?.callbackUrl ?? null;
    },
    release(taskId) {
      const task = tasks.get(taskId);
      if (task) task.pinned = null;
    },
    sweep,
    setRateLimit(next) {
      limiter = next ? createRateLimiter(next) : null;
    },
    resetStats() {
      stats.gets.clear();
      stats.submits = 0;
      stats.cancels = 0;
      stats.callbacks = 0;
      stats.faults = 0;
      stats.requests = 0;
      stats.rateLimited.clear();
    },
  };
}
