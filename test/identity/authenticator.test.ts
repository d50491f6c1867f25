import { inspect } from 'node:util';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { readConfig } from '../../src/config.ts';
import { createAuthenticator } from '../../src/identity/authenticator.ts';
import { ownerHashOf } from '../../src/identity/end-user.ts';
import { sha256 } from '../../src/lib/sha256.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { createManualClock, createManualScheduler } from '../helpers/clock.ts';

const SECRET = 'a-shared-secret-of-at-least-32-characters';
const ISSUER = 'https://id.example/';
const env = {
  UPSTREAM_URL: 'https://api.example/v1',
  UPSTREAM_API_KEY: 'sk-server',
  AUTH_MODE: 'jwt',
  AUTH_HS256_SECRET: SECRET,
  AUTH_ISSUER: ISSUER,
  AUTH_AUDIENCE: 'api',
};

function setUp() {
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  const serverCredential = createCredential('sk-server');
  const authenticator = createAuthenticator({ auth: readConfig(env).auth, serverCredential, now: clock.now, scheduler });
  const sign = (sub: string, lifetimeS = 600) =>
    new SignJWT({ sub })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setAudience('api')
      .setExpirationTime(Math.floor(clock.now() / 1000) + lifetimeS)
      .sign(new TextEncoder().encode(SECRET));
  return { clock, scheduler, serverCredential, authenticator, sign };
}

describe('createAuthenticator (the contract every transport and resolver relies on)', () => {
  it('answers the server-held credential and the user: its id, the hash of issuer and id, and when the token stops being accepted', async () => {
    const { clock, serverCredential, authenticator, sign } = setUp();
    const caller = await authenticator.fromAuthorization(`Bearer ${await sign('alice')}`);
    expect(caller.credential).toBe(serverCredential);
    expect(caller.user.id).toBe('alice');
    expect(caller.user.ownerHash).toBe(ownerHashOf(ISSUER, 'alice'));
    expect(caller.user.ownerHash).toBe(sha256(`${ISSUER}\nalice`));
    expect(caller.user.expiresAtMs).toBe((Math.floor(clock.now() / 1000) + 600 + 60) * 1000);
    const fromSocket = await authenticator.fromConnectionParams({ headers: { Authorization: `Bearer ${await sign('bob')}` } });
    expect(fromSocket.user.id).toBe('bob');
  });

  it('keeps the user id out of JSON and inspection (so out of log lines)', async () => {
    const { authenticator, sign } = setUp();
    const { user } = await authenticator.fromAuthorization(`Bearer ${await sign('carol-secret-id')}`);
    expect(JSON.stringify(user)).not.toContain('carol-secret-id');
    expect(inspect(user)).not.toContain('carol-secret-id');
  });

  it('fires atExpiry once at exp plus the tolerance, and not when cancelled', async () => {
    const { scheduler, authenticator, sign } = setUp();
    const { user } = await authenticator.fromAuthorization(`Bearer ${await sign('dave', 120)}`);
    let fired = 0;
    authenticator.atExpiry(user, () => fired++);
    const cancel = authenticator.atExpiry(user, () => fired++);
    cancel();
    scheduler.advance(180_000 - 1);
    expect(fired).toBe(0);
    scheduler.advance(1);
    expect(fired).toBe(1);
  });

  it('refuses a connection whose credential is under another name, or not one string', async () => {
    const { authenticator, sign } = setUp();
    const token = await sign('eve');
    for (const params of [
      { token: `Bearer ${token}` },
      { authorization: [token] },
      { authorization: `Bearer ${token}`, Authorization: `Bearer ${token}` },
      {},
    ]) {
      await expect(authenticator.fromConnectionParams(params)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    }
  });
});
