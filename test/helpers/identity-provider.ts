import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { track } from './leftovers.ts';

type Keys = Awaited<ReturnType<typeof generateKeyPair>>;

/** A stand-in identity provider: a real key-set endpoint (port 0) publishing RS256 keys made here, and a token signer. */
export interface TestIdentityProvider {
  jwksUrl: string;
  issuer: string;
  audience: string;
  /** The `AUTH_*` environment of a gateway that trusts this provider. */
  env: Record<string, string>;
  /** Key-set requests answered (or refused while down) so far. */
  fetches(): number;
  /** The `kid` of the current signing key. */
  kid(): string;
  /** The current key's public PEM (SPKI). */
  publicPem(): Promise<string>;
  /**
   * A token for `sub` (default `alice`), iat now, exp now + 1 h, unless `claims` say otherwise (`undefined` removes a claim);
   * `keys` and `header` replace the signing key and header.
   */
  sign(claims?: Record<string, unknown>, options?: { keys?: Keys; header?: Record<string, unknown> }): Promise<string>;
  /** Makes and publishes a new signing key beside the old ones; answers its kid. */
  rotate(): Promise<string>;
  /** Stops publishing the key `kid` (a revoked key). */
  unpublish(kid: string): void;
  /** While down, the key set answers 503. */
  setDown(down: boolean): void;
  stop(): Promise<void>;
}

export async function startIdentityProvider(options: { now?: () => number } = {}): Promise<TestIdentityProvider> {
  const { now = Date.now } = options;
  const published: Array<{ kid: string; keys: Keys; jwk: JWK }> = [];
  let down = false;
  let fetches = 0;
  const publish = async () => {
    const keys = await generateKeyPair('RS256', { extractable: true });
    const kid = `key-${published.length + 1}`;
    published.push({ kid, keys, jwk: { ...(await exportJWK(keys.publicKey)), kid, alg: 'RS256', use: 'sig' } });
    return kid;
  };
  await publish();
  const server = createServer((request, response) => {
    fetches += 1;
    if (down || request.url !== '/.well-known/jwks.json') return void response.writeHead(down ? 503 : 404).end();
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published.map((entry) => entry.jwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const stop = track(() => new Promise((resolve) => server.close(resolve)));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = `${base}/`;
  const audience = 'https://gateway.test';
  const current = () => published.at(-1)!;
  return {
    jwksUrl: `${base}/.well-known/jwks.json`,
    issuer,
    audience,
    env: { AUTH_MODE: 'jwt', AUTH_JWKS_URL: `${base}/.well-known/jwks.json`, AUTH_ISSUER: issuer, AUTH_AUDIENCE: audience },
    fetches: () => fetches,
    kid: () => current().kid,
    publicPem: () => exportSPKI(current().keys.publicKey),
    async sign(claims = {}, signOptions = {}) {
      const seconds = Math.floor(now() / 1000);
      const payload: JWTPayload = { iss: issuer, aud: audience, sub: 'alice', iat: seconds, exp: seconds + 3_600, ...claims };
      for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', kid: current().kid, typ: 'JWT', ...signOptions.header } as never)
        .sign((signOptions.keys ?? current().keys).privateKey);
    },
    rotate: publish,
    unpublish(kid) {
      published.splice(
        published.findIndex((entry) => entry.kid === kid),
        1,
      );
    },
    setDown(value) {
      down = value;
    },
    stop,
  };
}
