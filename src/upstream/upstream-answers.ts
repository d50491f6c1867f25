import type { Dispatcher } from 'undici';
import { readBounded } from '../lib/read-body.ts';
import type { Credential } from './credential.ts';
import { UpstreamInvalidError, type UpstreamQuota } from './errors.ts';
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

export async function readText(
  body: Dispatcher.ResponseData['body'],
  maxBytes: number,
  contentLength: string | string[] | undefined,
): Promise<string> {
  // The common case, a declared length within the bound: undici reads it whole (undici enforces the declared
  // length itself). Otherwise the body is read chunk by chunk and stopped at the bound.
  if (typeof contentLength === 'string' && /^\d+$/.test(contentLength) && Number(contentLength) <= maxBytes) return body.text();
  const { bytes, overflow } = await readBounded(body, maxBytes);
  if (overflow) {
    // Stop the rest of an oversized answer: the connection is not reused.
    body.destroy();
    throw new UpstreamInvalidError(`The upstream answer exceeded ${maxBytes} bytes.`);
  }
  return bytes.toString('utf8');
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
