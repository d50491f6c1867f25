import { createLruMap } from '../lib/lru-map.ts';

export interface KeyStandingOptions {
  /** How long a key the upstream answered 401 is refused without asking it again, in ms. */
  failFastMs: number;
  /** Keys remembered, accepted or rejected; the one accepted (or rejected) longest ago is forgotten first: asking does not renew a key. */
  maxKeys: number;
  now: () => number;
}

/**
 * What the upstream said of each key (by hash): accepted once (it may use its
 * whole in-flight bound), or rejected with 401 (refused here until `failFastMs`
 * have passed). A key never heard of is neither: it sends one request at a time.
 */
export interface KeyStanding {
  accepted(keyHash: string): boolean;
  /** Whether requests of the key are refused now, without an upstream call. */
  refused(keyHash: string): boolean;
  accept(keyHash: string): void;
  reject(keyHash: string): void;
}

/**
 * Asked on every request of a key: an accepted key is read and accepted again without reordering
 * its map, whose recency then is when it was first accepted (reordering a Map on every request
 * allocated more than the request's own scheduling).
 */
export function createKeyStanding(options: KeyStandingOptions): KeyStanding {
  const { failFastMs, maxKeys, now } = options;
  const accepted = createLruMap<string, true>({ maxEntries: maxKeys });
  /** Until when (ms) each rejected key is refused. */
  const rejected = createLruMap<string, number>({ maxEntries: maxKeys });
  return {
    accepted: (keyHash) => accepted.peek(keyHash) === true,
    refused(keyHash) {
      const until = rejected.peek(keyHash);
      if (until === undefined) return false;
      if (until > now()) return true;
      rejected.delete(keyHash);
      return false;
    },
    accept(keyHash) {
      if (accepted.peek(keyHash) !== true) accepted.set(keyHash, true);
    },
    reject(keyHash) {
      rejected.set(keyHash, now() + failFastMs);
      accepted.delete(keyHash);
    },
  };
}
