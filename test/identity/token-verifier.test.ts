import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createRemoteKeySet } from '../../src/identity/remote-key-set.ts';
import { createPemKeySource, createSecretKeySource } from '../../src/identity/static-keys.ts';
import { createTokenVerifier } from '../../src/identity/token-verifier.ts';
import { createManualClock } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';

const ISSUER = 'https://id.example/';
const AUDIENCE = 'api';
const SECRET = 'a-shared-secret-of-at-least-32-characters';

/** A token for `sub`, HS256 with `SECRET` unless `key` and `alg` say otherwise. */
async function token(
  now: number,
  claims: Record<string, unknown> = {},
  key: Parameters<SignJWT['sign']>[0] = new TextEncoder().encode(SECRET),
  alg = 'HS256',
) {
  const seconds = Math.floor(now / 1000);
  return new SignJWT({ sub: 'alice', ...claims })
    .setProtectedHeader({ alg })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(seconds)
    .setExpirationTime(seconds + 600)
    .sign(key);
}

/** A local key-set endpoint that answers with `body` after `delayMs`, counting requests. */
async function keySetServer(body: string, delayMs = 0) {
  let requests = 0;
  const server = createServer((_request, response) => {
    requests += 1;
    setTimeout(() => response.writeHead(200, { 'content-type': 'application/json' }).end(body), delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  track(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, requests: () => requests };
}

describe('createTokenVerifier', () => {
  it('keeps at most maxCachedTokens verified tokens however many distinct ones arrive', async () => {
    const clock = createManualClock();
    const verifier = createTokenVerifier({
      issuer: ISSUER,
      audience: [AUDIENCE],
      keys: createSecretKeySource(SECRET),
      now: clock.now,
      maxCachedTokens: 10,
    });
    for (let index = 0; index < 50; index++) {
      const user = await verifier.verify(await token(clock.now(), { sub: `user-${index}` }));
      expect(user.id).toBe(`user-${index}`);
      expect(verifier.cached()).toBeLessThanOrEqual(10);
    }
    expect(verifier.cached()).toBe(10);
  });

  it('stops accepting a cached token at exp plus the tolerance', async () => {
    const clock = createManualClock();
    const verifier = createTokenVerifier({
      issuer: ISSUER,
      audience: [AUDIENCE],
      keys: createSecretKeySource(SECRET),
      now: clock.now,
      clockToleranceS: 60,
    });
    const jwt = await token(clock.now());
    const user = await verifier.verify(jwt);
    expect(user.expiresAtMs).toBe((Math.floor(clock.now() / 1000) + 660) * 1000);
    clock.advance(user.expiresAtMs! - clock.now() - 1);
    await expect(verifier.verify(jwt)).resolves.toBe(user);
    clock.advance(1);
    await expect(verifier.verify(jwt)).rejects.toMatchObject({ reason: 'EXPIRED' });
  });

  it('reads a nested user claim by its dotted path, or a claim whose own name has dots', async () => {
    const clock = createManualClock();
    const nested = createTokenVerifier({
      issuer: ISSUER,
      audience: [AUDIENCE],
      keys: createSecretKeySource(SECRET),
      now: clock.now,
      userClaim: 'app_metadata.user_id',
    });
    expect((await nested.verify(await token(clock.now(), { app_metadata: { user_id: 'u-42' } }))).id).toBe('u-42');
    const namespaced = createTokenVerifier({
      issuer: ISSUER,
      audience: [AUDIENCE],
      keys: createSecretKeySource(SECRET),
      now: clock.now,
      userClaim: 'https://app.example/uid',
    });
    expect((await namespaced.verify(await token(clock.now(), { 'https://app.example/uid': 'u-7' }))).id).toBe('u-7');
    await expect(nested.verify(await token(clock.now(), { app_metadata: {} }))).rejects.toMatchObject({ reason: 'MISSING_CLAIM' });
  });

  it('with a PEM key accepts only its own algorithm family: an HS256 token keyed with the PEM text is refused', async () => {
    const clock = createManualClock();
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    const verifier = createTokenVerifier({ issuer: ISSUER, audience: [AUDIENCE], keys: createPemKeySource(pem), now: clock.now });
    expect((await verifier.verify(await token(clock.now(), {}, privateKey, 'ES256'))).id).toBe('alice');
    await expect(verifier.verify(await token(clock.now(), {}, new TextEncoder().encode(pem)))).rejects.toMatchObject({
      reason: 'ALGORITHM_NOT_ALLOWED',
    });
    const secret = createTokenVerifier({ issuer: ISSUER, audience: [AUDIENCE], keys: createSecretKeySource(SECRET), now: clock.now });
    await expect(secret.verify(await token(clock.now(), {}, privateKey, 'ES256'))).rejects.toMatchObject({
      reason: 'ALGORITHM_NOT_ALLOWED',
    });
  });

  it('refuses an over-long token before any signature check', async () => {
    const verifier = createTokenVerifier({
      issuer: ISSUER,
      audience: [AUDIENCE],
      keys: createSecretKeySource(SECRET),
      maxTokenLength: 100,
    });
    await expect(verifier.verify(`${'a'.repeat(60)}.${'b'.repeat(60)}.c`)).rejects.toMatchObject({ reason: 'MALFORMED' });
  });
});

describe('createRemoteKeySet', () => {
  it('refuses a key set larger than maxBytes, saying the keys could not be fetched', async () => {
    const server = await keySetServer(JSON.stringify({ keys: [], padding: 'x'.repeat(10_000) }));
    const keys = createRemoteKeySet({ url: server.url, maxBytes: 1_000 });
    expect(await keys.status()).toEqual({ ready: false, detail: 'unreachable' });
    const verifier = createTokenVerifier({ issuer: ISSUER, audience: [AUDIENCE], keys });
    const { privateKey } = await generateKeyPair('RS256');
    await expect(verifier.verify(await token(Date.now(), {}, privateKey, 'RS256'))).rejects.toMatchObject({ reason: 'KEYS_UNREACHABLE' });
  });

  it('gives up on a key set that does not answer within timeoutMs, with one fetch for many waiting callers', async () => {
    const server = await keySetServer('{"keys":[]}', 60_000);
    // Long enough for the request to reach the server on a busy machine (at 50 ms it was sometimes given up before).
    const keys = createRemoteKeySet({ url: server.url, timeoutMs: 1_000 });
    const verifier = createTokenVerifier({ issuer: ISSUER, audience: [AUDIENCE], keys });
    const { privateKey } = await generateKeyPair('RS256');
    const jwt = await token(Date.now(), {}, privateKey, 'RS256');
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => verifier.verify(jwt)));
    expect(
      outcomes.every((outcome) => outcome.status === 'rejected' && (outcome.reason as { reason: string }).reason === 'KEYS_UNREACHABLE'),
    ).toBe(true);
    expect(server.requests()).toBe(1);
  });
});
