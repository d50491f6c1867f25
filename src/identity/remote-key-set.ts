import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { TokenRefusedError } from './token-refused-error.ts';

export interface RemoteKeySetOptions {
  /** The identity provider's key set (`AUTH_JWKS_URL`). */
  url: string;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** How long a fetched key set is used before it is refreshed in the background, in ms. Default 600 000 (10 min). */
  maxAgeMs?: number;
  /** Least time between two fetches made for an unknown `kid` or after a failure, in ms. Default 30 000 (30 s). */
  cooldownMs?: number;
  /** Deadline of one fetch, in ms. Default 5 000. */
  timeoutMs?: number;
  /** Largest key set accepted, in bytes. Default 262 144 (256 KiB). */
  maxBytes?: number;
  /** Fetches the key set. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/** How the key set stands, for `/readyz`. */
export interface KeySetStatus {
  /** False only when no key set could ever be fetched: no token can be verified. */
  ready: boolean;
  /** `ok`, `unreachable: using the keys fetched <n> s ago`, or `unreachable`. */
  detail: string;
}

/** Keys that verify tokens, for `jwtVerify`. */
export interface KeySource {
  /** jose's key resolver: picks the key for a token's header. */
  getKey: JWTVerifyGetKey;
  /** Algorithms a token may name: those of the key type only (never `none`, never HMAC with a public key). */
  algorithms: readonly string[];
  /** Changes whenever the keys change, so that tokens verified with the old ones are checked again. */
  generation(): number;
  /** Fetches a key set if none was yet (within the cooldown), and tells how it stands. */
  status(): Promise<KeySetStatus>;
}

/** Asymmetric signature algorithms: the only ones a published key set can verify. */
export const ASYMMETRIC_ALGORITHMS = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);

/**
 * An identity provider's JWKS, fetched and cached. Unlike jose's
 * `createRemoteJWKSet` alone, the last good set is kept when a refresh fails
 * (an outage of the provider is not an outage of the app for tokens whose key
 * is cached). Fetches are single-flight, bounded in time and bytes; a stale set
 * is refreshed in the background while it keeps serving; an unknown `kid`
 * fetches at most once per cooldown, so a storm of made-up `kid`s costs one fetch.
 */
export function createRemoteKeySet(options: RemoteKeySetOptions): KeySource & { fetches(): number } {
  const {
    url,
    now = Date.now,
    maxAgeMs = 600_000, // 10 min
    cooldownMs = 30_000, // 30 s
    timeoutMs = 5_000, // 5 s
    maxBytes = 256 * 1024, // 256 KiB
    fetch: fetchKeys = fetch,
  } = options;
  let current: { local: ReturnType<typeof createLocalJWKSet>; text: string; at: number } | null = null;
  let inflight: Promise<void> | null = null;
  let lastAttemptAt = Number.NEGATIVE_INFINITY;
  let lastFailed = false;
  let generation = 0;
  let fetches = 0;

  async function load(): Promise<void> {
    fetches += 1;
    lastAttemptAt = now();
    try {
      const text = await download();
      const local = createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
      if (text !== current?.text) generation += 1;
      current = { local, text, at: now() };
      lastFailed = false;
    } catch (error) {
      lastFailed = true;
      throw error;
    }
  }

  async function download(): Promise<string> {
    const response = await fetchKeys(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new Error(`key set answered ${response.status}`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of response.body) {
      size += chunk.length;
      if (size > maxBytes) throw new Error(`key set larger than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** One fetch at a time; every caller waiting for it shares its outcome. */
  function refresh(): Promise<void> {
    inflight ??= load().finally(() => {
      inflight = null;
    });
    return inflight;
  }

  const unreachable = () =>
    new TokenRefusedError('KEYS_UNREACHABLE', "The identity provider's keys could not be fetched (AUTH_JWKS_URL); try again shortly.");

  async function getKey(...args: Parameters<JWTVerifyGetKey>) {
    if (!current) {
      if (now() - lastAttemptAt < cooldownMs && !inflight) throw unreachable();
      await refresh().catch(() => undefined);
      if (!current) throw unreachable();
    } else if (now() - current.at >= maxAgeMs && now() - lastAttemptAt >= cooldownMs) {
      void refresh().catch(() => undefined);
    }
    try {
      return await current.local(...args);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      // A key we have not seen: perhaps just published (rotation). Ask again, at most once per cooldown.
      if (inflight) await inflight.catch(() => undefined);
      else if (now() - lastAttemptAt >= cooldownMs) await refresh().catch(() => undefined);
      if (lastFailed) throw unreachable();
      return current.local(...args);
    }
  }

  return {
    getKey: getKey as JWTVerifyGetKey,
    algorithms: ASYMMETRIC_ALGORITHMS,
    generation: () => generation,
    fetches: () => fetches,
    async status() {
      if (!current && !inflight && now() - lastAttemptAt >= cooldownMs) await refresh().catch(() => undefined);
      else if (inflight) await inflight.catch(() => undefined);
      if (!current) return { ready: false, detail: 'unreachable' };
      if (!lastFailed) return { ready: true, detail: 'ok' };
      return { ready: true, detail: `unreachable: using the keys fetched ${Math.round((now() - current.at) / 1000)} s ago` };
    },
  };
}
