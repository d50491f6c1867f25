import type { AuthConfig } from '../config.ts';
import type { ResolvedCaller } from '../graphql/context.ts';
import { realScheduler, type Scheduler } from '../lib/scheduler.ts';
import { authorizationFromConnectionParams, type Credential } from '../upstream/credential.ts';
import { createDevIdentityProvider, type DevIdentityProvider } from './dev-identity-provider.ts';
import type { EndUser } from './end-user.ts';
import { createRemoteKeySet, type KeySetStatus, type KeySource } from './remote-key-set.ts';
import { createPemKeySource, createSecretKeySource } from './static-keys.ts';
import { TokenRefusedError } from './token-refused-error.ts';
import { createTokenVerifier, type TokenVerifier } from './token-verifier.ts';

export interface AuthenticatorOptions {
  /** `config.auth`, with `mode: 'jwt'`. */
  auth: AuthConfig;
  /** The server-held upstream credential (`UPSTREAM_API_KEY`): every jwt-mode caller's. */
  serverCredential: Credential;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Timers of token expiry on open subscriptions. Default: Node's. */
  scheduler?: Scheduler;
  /** Fetches `AUTH_JWKS_URL`. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/**
 * Who is calling, in jwt mode: the one code path every transport goes through
 * (HTTP, SSE and multipart with the `Authorization` header, WebSocket with
 * `connectionParams`), and the timers that end a caller's subscriptions when
 * its token stops being accepted.
 */
export interface Authenticator {
  /** The caller of an HTTP request, from its `Authorization` header; rejects with `TokenRefusedError`. */
  fromAuthorization(header: string | null | undefined): Promise<ResolvedCaller & { user: EndUser }>;
  /** Synchronously, the caller of a header whose token was verified before and is still accepted; else null (then `fromAuthorization`). */
  knownCaller(header: string | null | undefined): (ResolvedCaller & { user: EndUser }) | null;
  /** The caller of a WebSocket connection, from its `connectionParams`; rejects like `fromAuthorization`. */
  fromConnectionParams(params: Readonly<Record<string, unknown>> | null | undefined): Promise<ResolvedCaller & { user: EndUser }>;
  /** Calls `onExpired` once, when `user`'s token stops being accepted; answers a function that cancels it. */
  atExpiry(user: EndUser, onExpired: () => void): () => void;
  /** How the identity provider's keys stand, for `/readyz`. */
  status(): Promise<KeySetStatus>;
  /** Served with the embedded emulator when no key source is configured; null otherwise. */
  devIdentityProvider: DevIdentityProvider | null;
  verifier: TokenVerifier;
}

/** Node's timers take at most 2^31 - 1 ms; a later expiry is re-armed on the way. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { auth, serverCredential, now = Date.now, scheduler = realScheduler, fetch } = options;
  const { issuer, audience } = auth as AuthConfig & { issuer: string };
  const devIdentityProvider = auth.devIdentityProvider ? createDevIdentityProvider({ issuer, audience: audience[0]!, now }) : null;
  const keys: KeySource = devIdentityProvider
    ? devIdentityProvider.keys
    : auth.jwksUrl !== null
      ? createRemoteKeySet({ url: auth.jwksUrl, now, fetch })
      : auth.publicKey !== null
        ? createPemKeySource(auth.publicKey)
        : createSecretKeySource(auth.hs256Secret!);
  const verifier = createTokenVerifier({
    issuer,
    audience,
    keys,
    clockToleranceS: auth.clockToleranceS,
    userClaim: auth.userClaim,
    now,
  });

  const BEARER = /^\s*Bearer\s+(\S+)\s*$/i;

  async function fromAuthorization(header: string | null | undefined) {
    if (header === null || header === undefined) {
      throw new TokenRefusedError('NO_TOKEN', 'Sign in: send "Authorization: Bearer <token>" with a token from the identity provider.');
    }
    const match = BEARER.exec(header);
    if (!match) throw new TokenRefusedError('MALFORMED', 'The Authorization header must be "Bearer <token>".');
    return { credential: serverCredential, user: await verifier.verify(match[1]!) };
  }

  return {
    fromAuthorization,
    knownCaller(header) {
      const match = header ? BEARER.exec(header) : null;
      const user = match ? verifier.known(match[1]!) : null;
      return user ? { credential: serverCredential, user } : null;
    },
    async fromConnectionParams(params) {
      let header: string | null;
      try {
        header = authorizationFromConnectionParams(params);
      } catch {
        throw new TokenRefusedError('MALFORMED', 'connectionParams.authorization must be one string, "Bearer <token>".');
      }
      if (header === null) {
        throw new TokenRefusedError(
          'NO_TOKEN',
          'Sign in: send connectionParams.authorization, "Bearer <token>", with a token from the identity provider.',
        );
      }
      return fromAuthorization(header);
    },
    atExpiry(user, onExpired) {
      const at = user.expiresAtMs;
      if (at === undefined) return () => undefined;
      let handle: unknown;
      const arm = () => {
        const delay = at - now();
        if (delay <= 0) return onExpired();
        handle = scheduler.setTimeout(arm, Math.min(delay, MAX_TIMER_MS));
      };
      arm();
      return () => scheduler.clearTimeout(handle);
    },
    status: () => keys.status(),
    devIdentityProvider,
    verifier,
  };
}
