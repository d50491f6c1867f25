import { generateKeyPairSync, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLocalJWKSet, type JWK, SignJWT } from 'jose';
import { sendJson } from '../lib/send-json.ts';
import type { KeySource } from './remote-key-set.ts';

/** Where the development identity provider answers: `<path>jwks.json` and `<path>token?user=<name>`. */
export const DEV_IDENTITY_PROVIDER_PATH = '/dev/identity/';

export interface DevIdentityProviderOptions {
  issuer: string;
  audience: string;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Lifetime of the tokens it makes, in seconds. Default 3 600 (1 h). */
  tokenLifetimeS?: number;
}

/**
 * A development identity provider, for trying jwt mode with the embedded
 * emulator only (config refuses it with `UPSTREAM_URL`): a P-256 signing key
 * made at start, its key set, and a token for any user name. Never for production:
 * anyone who reaches it can sign in as anyone.
 */
export interface DevIdentityProvider {
  /** The keys its tokens verify with (local: no fetch). */
  keys: KeySource;
  /** A signed token for `user`. */
  tokenFor(user: string): Promise<{ token: string; expiresAt: string }>;
  /** Answers `GET <path>jwks.json` and `GET <path>token?user=<name>`; `path` is what follows the prefix. */
  handle(request: IncomingMessage, response: ServerResponse, path: string): Promise<void>;
}

export function createDevIdentityProvider(options: DevIdentityProviderOptions): DevIdentityProvider {
  const { issuer, audience, now = Date.now, tokenLifetimeS = 3_600 } = options;
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  const jwks = { keys: [{ ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'ES256', use: 'sig' }] };
  const local = createLocalJWKSet(jwks);

  async function tokenFor(user: string) {
    const issuedAt = Math.floor(now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(user)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + tokenLifetimeS)
      .sign(privateKey);
    return { token, expiresAt: new Date((issuedAt + tokenLifetimeS) * 1000).toISOString() };
  }

  return {
    keys: {
      getKey: local,
      algorithms: ['ES256'],
      generation: () => 0,
      status: async () => ({ ready: true, detail: 'development identity provider' }),
    },
    tokenFor,
    async handle(request, response, path) {
      if (request.method !== 'GET') return sendJson(response, 405, { error: 'GET only' });
      if (path === 'jwks.json') return sendJson(response, 200, jwks);
      if (path === 'token') {
        const user = new URL(request.url ?? '/', 'http://localhost').searchParams.get('user')?.trim() ?? '';
        if (!/^[\w.@-]{1,64}$/.test(user)) {
          return sendJson(response, 400, { error: 'Give ?user=<name>: 1 to 64 letters, digits, ".", "@", "_" or "-".' });
        }
        return sendJson(response, 200, { ...(await tokenFor(user)), user }, { 'cache-control': 'no-store' });
      }
      return sendJson(response, 404, {
        error: `Not found: ${DEV_IDENTITY_PROVIDER_PATH}jwks.json and ${DEV_IDENTITY_PROVIDER_PATH}token?user=<name> are served.`,
      });
    },
  };
}
