import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../lib/send-json.ts';
import type { TaskPoller } from '../pollers/task-poller.ts';
import type { Credential } from '../upstream/credential.ts';
import type { CallbackTokenStore } from './callback-tokens.ts';

/** Where webhooks arrive: `POST <PUBLIC_URL>/webhooks/tasks/<token>`. */
export const WEBHOOK_PATH = '/webhooks/tasks/';

export interface WebhooksOptions {
  /** The gateway's public base URL (`PUBLIC_URL`, no trailing slash); null: no callbacks are asked for. */
  publicUrl: string | null;
  poller: Pick<TaskPoller, 'nudge' | 'nudgeKey' | 'read'>;
  /** Where the tokens are kept (and, with Redis, shared with the other replicas). */
  tokens: Pick<CallbackTokenStore, 'issue' | 'find'>;
  /** Largest webhook body read; the body is never believed, only drained. Default 65 536 bytes. */
  maxBodyBytes?: number;
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
 * replica: it finds the loop through the token store.
 */
export interface Webhooks {
  /** A `callback_url` for a task about to be submitted with `credential`; null when `PUBLIC_URL` is unset. */
  prepare(credential: Credential): PreparedCallback | null;
  /** Handles `POST /webhooks/tasks/<token>`; `token` is what follows the path. */
  handle(request: IncomingMessage, response: ServerResponse, token: string): Promise<void>;
}

export function createWebhooks(options: WebhooksOptions): Webhooks {
  const {
    publicUrl,
    poller,
    tokens,
    maxBodyBytes = 64 * 1024, // 64 KiB
  } = options;

  return {
    prepare(credential) {
      if (publicUrl === null) return null;
      const token = randomBytes(24).toString('base64url');
      const { bind } = tokens.issue(token, credential);
      return { url: `${publicUrl}${WEBHOOK_PATH}${token}`, bind };
    },

    async handle(request, response, token) {
      if (request.method !== 'POST') {
        response.writeHead(405, { allow: 'POST' }).end();
        return;
      }
      const target = /^[\w-]{16,64}$/.test(token) ? await tokens.find(token) : null;
      await dropBody(request, response, maxBodyBytes);
      if (!target) return sendJson(response, 404, { error: 'unknown callback token' });
      sendJson(response, 202, { accepted: true });
      if ('loopKey' in target) {
        // Issued by another replica: the loop is nudged wherever it runs.
        poller.nudgeKey(target.loopKey);
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
