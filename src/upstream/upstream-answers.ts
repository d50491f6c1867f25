import type { Dispatcher } from 'undici';
import type { Abortable } from '../lib/stop-signal.ts';
import type { Credential } from './credential.ts';
import { UpstreamError, UpstreamInvalidError, type UpstreamQuota, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.ts';
import { isRecord } from './task-snapshot.ts';

/**
 * How the upstream's answers are read, whatever they hold: bodies within a
 * bound, JSON or nothing, the wait of a 429 (`Retry-After`, `reset_at`), a
 * quota body (`cap` per `window`), and messages safe to show (the caller's key
 * blotted out). The client (`tasks-client.ts`) turns them into snapshots and
 * typed errors.
 */

/** One answer, as read: status, headers, and the body as JSON (`undefined` when it is none). */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/**
 * One request's answer as undici hands it over through its dispatch API: the
 * status, the headers, and the body collected as it arrives, never more than
 * `maxBytes` of it. No response stream and no abort controller of its own: a
 * poll is a request, and those would cost more than the rest of the poll. It is
 * the abort listener of the caller's signal (`handleEvent`); `abort` ends it
 * with a reason at any point, before undici started it included; its deadline
 * (connect, headers and body) ends it with `UpstreamTimeoutError`.
 */
export class BoundedAnswer implements Dispatcher.DispatchHandler {
  /** Settles with the answer, or with the caller's reason, or an `UpstreamError`. */
  readonly promise: Promise<RawResponse>;
  private readonly deadline: NodeJS.Timeout;
  private resolve!: (response: RawResponse) => void;
  private reject!: (error: unknown) => void;
  private status = 0;
  private headers: RawResponse['headers'] = {};
  private chunks: Buffer[] = [];
  private size = 0;
  private controller: Dispatcher.DispatchController | null = null;
  private reason: unknown = null;
  private settled = false;

  constructor(
    private readonly maxBytes: number,
    /** The exchange's deadline: connect, headers and body (ms). */
    private readonly deadlineMs: number,
    private readonly signal: Abortable | undefined,
    /** The exchange's trace: told how it ended (its status, or null and the error) before the promise settles. */
    readonly traced?: { end(status: number | null, error?: unknown): void; within<T>(fn: () => T): T },
  ) {
    this.promise = new Promise<RawResponse>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // The answer itself is the timer's argument: no closure per request.
    this.deadline = setTimeout(expire, deadlineMs, this);
    signal?.addEventListener('abort', this);
  }

  /** The deadline passed. */
  expire(): void {
    this.abort(new UpstreamTimeoutError(`The upstream did not answer within ${this.deadlineMs} ms.`));
  }

  /** Ends the exchange with `reason`: the caller hears it now; undici stops the request now, or as it starts it. */
  abort(reason: unknown): void {
    if (this.reason !== null) return;
    this.reason = reason;
    if (this.controller) this.controller.abort(reason as Error);
    else this.fail(reason);
  }

  /** The caller's signal fired. */
  handleEvent(): void {
    this.abort(this.signal!.reason);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.reason !== null) controller.abort(this.reason as Error);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: RawResponse['headers']): void {
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.size += chunk.length;
    // Stop an oversized answer where it passes the bound: the connection is not reused.
    if (this.size > this.maxBytes) this.abort(new UpstreamInvalidError(`The upstream answer exceeded ${this.maxBytes} bytes.`));
    else this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (!this.settle()) return;
    this.traced?.end(this.status);
    const bytes = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    // A UTF-8 byte order mark is not part of the JSON.
    const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
    this.resolve({ status: this.status, headers: this.headers, body: parseJson(bytes.toString('utf8', start)) });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.fail(this.reason ?? error);
  }

  private fail(error: unknown): void {
    // Aborted before undici started it, the request still ends in an error when it starts: told once.
    if (!this.settle()) return;
    const reason = this.signal?.aborted
      ? this.signal.reason
      : error instanceof UpstreamError
        ? error
        : isUndiciTimeout(error)
          ? new UpstreamTimeoutError(`The upstream did not answer within ${this.deadlineMs} ms.`)
          : new UpstreamUnavailableError('The upstream could not be reached.');
    this.traced?.end(null, reason);
    this.reject(reason);
  }

  /** False when the answer was settled already. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.deadline);
    this.signal?.removeEventListener('abort', this);
    return true;
  }
}

function expire(answer: BoundedAnswer): void {
  answer.expire();
}

/** JSON, or `undefined` for an empty or non-JSON body (an HTML error page, say). */
export function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function isUndiciTimeout(error: unknown): boolean {
  const code = isRecord(error) ? error.code : undefined;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
}

/** `Retry-After` (seconds or an HTTP date), else `reset_at` in the body (Unix time). */
export function retryAfterMs(response: RawResponse, nowMs: number): number | null {
  const header = response.headers['retry-after'];
  const value = Array.isArray(header) ? header[0] : header;
  if (value !== undefined && value.trim() !== '') {
    const seconds = Number(value);
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
    const date = Date.parse(value);
    if (Number.isFinite(date)) return Math.max(0, date - nowMs);
  }
  const body = isRecord(response.body) ? response.body : {};
  const error = isRecord(body.error) ? body.error : {};
  const resetAt = Number(error.reset_at ?? body.reset_at);
  if (Number.isFinite(resetAt) && resetAt > 0) {
    const resetMs = resetAt > 1e12 ? resetAt : resetAt * 1000;
    return Math.max(0, resetMs - nowMs);
  }
  return null;
}

/** `cap` per `window` of a quota 429, inside `error` or beside it (UPSTREAM.md); null when either is missing. */
export function quotaOf(body: unknown): UpstreamQuota | null {
  const outer = isRecord(body) ? body : {};
  const inner = isRecord(outer.error) ? outer.error : {};
  const cap = Number(inner.cap ?? outer.cap);
  const windowMs = durationMs(inner.window ?? outer.window);
  return Number.isFinite(cap) && cap > 0 && windowMs !== null ? { cap, windowMs } : null;
}

/** `"1s"`, `"1m"`, `"500ms"`, `"1h"`, `"1d"`, or a number of seconds; null otherwise. */
export function durationMs(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value * 1_000 : null;
  if (typeof value !== 'string') return null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?\s*$/i.exec(value);
  if (!match) return null;
  const unit = { ms: 1, s: 1_000, sec: 1_000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 }[
    (match[2] ?? 's').toLowerCase() as 'ms'
  ];
  const ms = Number(match[1]) * unit;
  return ms > 0 ? ms : null;
}

/** The upstream's own message, short, printable, and with the caller's key blotted out. */
export function safeMessage(value: unknown, credential: Credential): string | null {
  if (typeof value !== 'string' || value.trim() === '') return null;
  // The key goes first, then the length: cut first, a key straddling the cut would leave a fragment.
  const redacted = value.split(credential.apiKey).join('[redacted]');
  return redacted.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 300);
}
