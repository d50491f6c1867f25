import { createLruMap } from '../lib/lru-map.ts';
import type { Credential } from '../upstream/credential.ts';

/**
 * The tokens of the `callback_url`s the gateway asks the upstream to call: each
 * names one (credential, task), so that a callback can only make the gateway
 * re-read a task with the key that submitted it. Kept in this process; the
 * Redis store (`redis-callback-tokens.ts`) also lets other replicas find the
 * loop a token names, by the token's hash.
 */
export interface CallbackTokenStore {
  /** Keeps `token`, issued for a submission with `credential`; `bind` names the task once the upstream answered. */
  issue(token: string, credential: Credential): { bind(taskId: string): void };
  /** What `token` names, or null when it is unknown, unbound or expired. */
  find(token: string): Promise<CallbackTarget | null>;
  /** Opens its connections, if any. */
  start(): void;
  dispose(): Promise<void>;
}

/** A token issued here names its credential and task; one issued by another replica, only its poll loop's key. */
export type CallbackTarget = { credential: Credential; taskId: string } | { loopKey: string };

export interface MemoryCallbackTokensOptions {
  /** Most tokens remembered; the one issued or called back longest ago goes first. Default 100 000. */
  maxTokens?: number;
  /** How long a token stays valid after it is issued, in ms. Default 86 400 000 (24 h, the upstream's idempotency window). */
  ttlMs?: number;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

interface TokenEntry {
  credential: Credential;
  taskId: string | null;
  expiresAt: number;
}

/** The tokens issued by this process, bounded in number and in time. */
export function createMemoryCallbackTokens(options: MemoryCallbackTokensOptions = {}): CallbackTokenStore & { readonly ttlMs: number } {
  const {
    maxTokens = 100_000,
    ttlMs = 86_400_000, // 24 h
    now = Date.now,
  } = options;
  const tokens = createLruMap<string, TokenEntry>({ maxEntries: maxTokens });
  return {
    ttlMs,
    issue(token, credential) {
      const entry: TokenEntry = { credential, taskId: null, expiresAt: now() + ttlMs };
      tokens.set(token, entry);
      return {
        bind(taskId) {
          entry.taskId = taskId;
        },
      };
    },
    async find(token) {
      const entry = tokens.get(token);
      if (!entry || entry.taskId === null) return null;
      if (entry.expiresAt <= now()) {
        tokens.delete(token);
        return null;
      }
      return { credential: entry.credential, taskId: entry.taskId };
    },
    start: () => undefined,
    dispose: async () => tokens.clear(),
  };
}
