import type { IncomingMessage, ServerResponse } from 'node:http';
import { isHttpUrl } from '../lib/http-url.ts';
import { readBounded } from '../lib/read-body.ts';
import { sendJson } from '../lib/send-json.ts';

/** How the emulator reads requests and answers errors, as the upstream does (UPSTREAM.md). */

/** Largest request body read, in bytes. */
const MAX_BODY_BYTES = 256 * 1024;

export function waitSeconds(request: IncomingMessage): number {
  const match = /(?:^|[,;\s])wait=(\d+)/.exec(String(request.headers.prefer ?? ''));
  return match ? Math.min(60, Number(match[1])) : 0;
}

export async function readJson(request: IncomingMessage): Promise<unknown> {
  const { bytes, overflow } = await readBounded(request, MAX_BODY_BYTES);
  if (overflow) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

export function isHttpUrlList(value: unknown): boolean {
  return Array.isArray(value) && value.every((item) => isHttpUrl(item));
}

export function badRequest(response: ServerResponse, code: string, message: string, param?: string): void {
  sendJson(response, 400, { error: { message, code, ...(param ? { param } : {}) } });
}

export function notFound(response: ServerResponse, code: string, message: string): void {
  sendJson(response, 404, { error: { message, code } });
}

export function taskNotFound(response: ServerResponse): void {
  notFound(response, 'task_not_found', 'Task not found.');
}

/** A placeholder for result media, so that result links open in a browser. */
export function sendFile(response: ServerResponse, name: string): void {
  const label = name.replace(/[^\w.-]/g, '');
  response.writeHead(200, { 'content-type': 'image/svg+xml' });
  response.end(
    `<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><rect width="256" height="256" fill="#4f46e5"/><text x="128" y="132" fill="#fff" font-family="sans-serif" font-size="14" text-anchor="middle">${label}</text></svg>`,
  );
}
