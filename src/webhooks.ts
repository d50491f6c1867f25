import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLruMap } from './lib/lru-map.ts';
import { sendJson } from './lib/send-json.ts';
import { sha256 } from './lib/sha256.ts';
import type { LoopCoordinator } from './pollers/loop-coordinator.ts';
import type { TaskPoller } from './pollers/task-poller.ts';
import type { Credential } from './upstream/credential.ts';

/** Where webhooks arrive: `POST <PUBLIC_URL>/webhooks/tasks/<token>`. */
export const WEBHOOK_PATH = '/webhooks/tasks/';

export interface WebhooksOptions {
  /** The gateway's public base URL (`PUBLIC_URL`, no trailing slash); null: no callbacks are asked for. */
  publicUrl: string | null;
  poller: Pick<TaskPoller, 'nudge' | 'nudgeKey' | 'read'>;
  /** How replicas share what a token names; the local one shares nothing. */
  coordinator: Pick<LoopCoordinator, 'rememberCallback' | 'findCallback'>;
  /** Most tokens remembered in this process; the oldest goes first. Default 100 000. */
  maxTokens?: number;
  /** How long a token stays valid after it is issued. Default 86 400 000 ms (24 h, the upstream's idempotency window). */
  ttlMs?: number;
  /** Largest webhook body read; the body is never believed, only drained. Default 65 536 bytes. */
  maxBodyBytes?: number;
  now?: () => number;
}

/** A `callback_url` issued for one submission, to be tied to the task id the upstream answers. */
export interface PreparedCallback {
  url: string;
  bind(taskId: string): void;
}

/**
 * Everything about the upstream's callbacks. `submitTask` asks `prepare` for a
 * `callback_url` carrying an unguessable token (192 random bits) that names
 * one (credential, task), so a callback can only make the gateway re-read a
 * task with the key that submitted it. The callback itself is a hint: its body
 * is never believed; the handler answers `202` at once, re-reads the task and
 * fans the change out. Behind a load balancer the callback may reach another
 * replica: it finds the loop through the coordinator by the token's hash.
 */
export interface Webhooks {
  /** A `callback_url` for a task about to be submitted with `credential`; null when `PUBLIC_URL` is unset. */
  prepare(credential: Credential): PreparedCallback | null;
  /** Handles `POST /webhooks/tasks/<token>`; `token` is what follows the path. */
  handle(request: IncomingMessage, response: ServerResponse, token: string): Promise<void>;
}

interface TokenEntry {
  credential: Credential;
  taskId: string | null;
  expiresAt: number;
}

export function createWebhooks(options: WebhooksOptions): Webhooks {
  const {
    publicUrl,
    poller,
    coordinator,
    maxTokens = 100_000,
    ttlMs = 86_400_000, // 24 h
    maxBodyBytes = 64 * 1024, // 64 KiB
    now = Date.now,
  } = options;
  const tokens = createLruMap<string, TokenEntry>({ maxEntries: maxTokens });

  function resolve(token: string): { credential: Credential; taskId: string } | undefined {
    const entry = tokens.get(token);
    if (!entry || entry.taskId === null) return undefined;
    if (entry.expiresAt <= now()) {
      tokens.delete(token);
      return undefined;
    }
    return { credential: entry.credential, taskId: entry.taskId };
  }

  return {
    prepare(credential) {
      if (publicUrl === null) return null;
      const token = randomBytes(24).toString('base64url');
      const entry: TokenEntry = { credential, taskId: null, expiresAt: now() + ttlMs };
      tokens.set(token, entry);
      return {
        url: `${publicUrl}${WEBHOOK_PATH}${token}`,
        bind(taskId) {
          entry.taskId = taskId;
          coordinator.rememberCallback(sha256(token), `${credential.hash}:${taskId}`, ttlMs);
        },
      };
    },

    async handle(request, response, token) {
      if (request.method !== 'POST') {
        response.writeHead(405, { allow: 'POST' }).end();
        return;
      }
      const wellFormed = /^[\w-]{16,64}$/.test(token);
      const target = wellFormed ? resolve(token) : undefined;
      const elsewhere = !target && wellFormed ? await coordinator.findCallback(sha256(token)) : null;
      await dropBody(request, response, maxBodyBytes);
      if (!target && !elsewhere) return sendJson(response, 404, { error: 'unknown callback token' });
      sendJson(response, 202, { accepted: true });
      if (!target) {
        poller.nudgeKey(elsewhere!);
        return;
      }
      if (!poller.nudge(target.credential, target.taskId)) {
        // Nobody watches it here: refresh the terminal cache for later readers, and ignore failures.
        poller.read(target.credential, target.taskId).catch(() => undefined);
      }
    },
  };
}

/**
 * Reads a webhook body and drops it, but never more than `maxBytes`: past
 * that (declared or sent) reading stops, the answer carries
 * `connection: close`, and the connection ends once the answer is out, so no
 * sender can make the gateway swallow an endless body. Within the limit the
 * connection stays open for the sender's next request.
 */
function dropBody(request: IncomingMessage, response: ServerResponse, maxBytes: number): Promise<void> {
  const closeAfterAnswer = () => {
    request.pause();
    response.setHeader('connection', 'close');
  };
  if (Number(request.headers['content-length'] ?? 0) > maxBytes) {
    closeAfterAnswer();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    let size = 0;
    const done = () => {
      request.off('data', onData).off('end', done).off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) return;
      closeAfterAnswer();
      done();
    };
    request.on('data', onData).on('end', done).on('close', done);
  });
}
