import { randomBytes } from 'node:crypto';
import type { Credential } from '../upstream/credential.ts';

export interface CallbackTokensOptions {
  /** Most tokens remembered; the oldest goes first. Default 100 000. */
  maxTokens?: number;
  /** How long a token stays valid after it is issued, in ms. Default 86 400 000 (24 h). */
  ttlMs?: number;
  now?: () => number;
}

export interface CallbackTarget {
  credential: Credential;
  taskId: string;
}

/**
 * The unguessable tokens carried by `callback_url`. A token names one
 * (credential, task), so a callback can only ever make the gateway re-read a
 * task with the key that submitted it; the callback's body is never believed.
 */
export interface CallbackTokens {
  /** A new token for a task about to be submitted with `credential` (192 random bits, base64url). */
  issue(credential: Credential): string;
  /** Ties a token to the task id the upstream answered. */
  bind(token: string, taskId: string): void;
  /** The watched (credential, task) of a token, or undefined for an unknown, unbound or expired one. */
  resolve(token: string): CallbackTarget | undefined;
  readonly size: number;
}

export function createCallbackTokens(options: CallbackTokensOptions = {}): CallbackTokens {
  const { maxTokens = 100_000, ttlMs = 86_400_000, now = Date.now } = options;
  const tokens = new Map<string, { credential: Credential; taskId: string | null; expiresAt: number }>();
  return {
    issue(credential) {
      const token = randomBytes(24).toString('base64url');
      tokens.set(token, { credential, taskId: null, expiresAt: now() + ttlMs });
      if (tokens.size > maxTokens) tokens.delete(tokens.keys().next().value as string);
      return token;
    },
    bind(token, taskId) {
      const entry = tokens.get(token);
      if (entry) entry.taskId = taskId;
    },
    resolve(token) {
      const entry = tokens.get(token);
      if (!entry || entry.taskId === null) return undefined;
      if (entry.expiresAt <= now()) {
        tokens.delete(token);
        return undefined;
      }
      return { credential: entry.credential, taskId: entry.taskId };
    },
    get size() {
      return tokens.size;
    },
  };
}
