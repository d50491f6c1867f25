import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEV_IDENTITY_PROVIDER, readConfig } from '../../src/config.ts';

const real = { UPSTREAM_URL: 'https://api.example/v1', UPSTREAM_API_KEY: 'sk-server' };
const jwt = { ...real, AUTH_MODE: 'jwt', AUTH_ISSUER: 'https://id.example/', AUTH_AUDIENCE: 'api' };
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

function refusal(env: Record<string, string>): string {
  try {
    readConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('accepted');
}

describe('AUTH_* configuration', () => {
  it('reads a jwt-mode configuration with a key set', () => {
    const { auth } = readConfig({
      ...jwt,
      AUTH_JWKS_URL: 'https://id.example/.well-known/jwks.json',
      AUTH_AUDIENCE: 'api, https://api.example',
      AUTH_CLOCK_TOLERANCE_S: '5',
      AUTH_USER_CLAIM: 'app_metadata.user_id',
    });
    expect(auth).toEqual({
      mode: 'jwt',
      issuer: 'https://id.example/',
      audience: ['api', 'https://api.example'],
      jwksUrl: 'https://id.example/.well-known/jwks.json',
      publicKey: null,
      hs256Secret: null,
      devIdentityProvider: false,
      clockToleranceS: 5,
      userClaim: 'app_metadata.user_id',
    });
  });

  it('reads a one-line PEM public key with \\n escapes', () => {
    const { auth } = readConfig({ ...jwt, AUTH_PUBLIC_KEY: publicPem.replace(/\n/g, '\\n') });
    expect(auth.publicKey).toBe(publicPem);
  });

  it('serves the development identity provider with the emulator and no key source, with its own issuer and audience', () => {
    const { auth, upstreamApiKey } = readConfig({ AUTH_MODE: 'jwt' });
    expect(auth).toMatchObject({
      devIdentityProvider: true,
      issuer: DEV_IDENTITY_PROVIDER.issuer,
      audience: [DEV_IDENTITY_PROVIDER.audience],
    });
    expect(upstreamApiKey).not.toBeNull();
  });

  it.each([
    [{ AUTH_MODE: 'oauth' }, 'AUTH_MODE'],
    [{ ...jwt, AUTH_HS256_SECRET: 'x'.repeat(32), AUTH_ISSUER: '' }, 'AUTH_ISSUER'],
    [{ ...jwt, AUTH_HS256_SECRET: 'x'.repeat(32), AUTH_AUDIENCE: ' , ' }, 'AUTH_AUDIENCE'],
    [{ ...jwt, AUTH_JWKS_URL: 'https://x/jwks', UPSTREAM_API_KEY: '' }, 'UPSTREAM_API_KEY'],
    [{ ...jwt }, 'AUTH_MODE'],
    [{ ...jwt, AUTH_JWKS_URL: 'id.example/jwks' }, 'AUTH_JWKS_URL'],
    [{ ...jwt, AUTH_JWKS_URL: 'https://x/jwks', AUTH_HS256_SECRET: 'x'.repeat(32) }, 'AUTH_JWKS_URL'],
    [{ ...jwt, AUTH_HS256_SECRET: 'short' }, 'AUTH_HS256_SECRET'],
    [{ ...jwt, AUTH_PUBLIC_KEY: 'ssh-ed25519 AAAA' }, 'AUTH_PUBLIC_KEY'],
    [{ ...jwt, AUTH_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----' }, 'AUTH_PUBLIC_KEY'],
    [{ ...jwt, AUTH_PUBLIC_KEY: privatePem }, 'AUTH_PUBLIC_KEY'],
    [{ ...jwt, AUTH_HS256_SECRET: 'x'.repeat(32), AUTH_CLOCK_TOLERANCE_S: '-1' }, 'AUTH_CLOCK_TOLERANCE_S'],
    [{ ...jwt, AUTH_HS256_SECRET: 'x'.repeat(32), AUTH_USER_CLAIM: 'a..b' }, 'AUTH_USER_CLAIM'],
  ])('refuses %o with one line naming %s', (env, name) => {
    const message = refusal(env);
    expect(message.startsWith(name)).toBe(true);
    expect(message).not.toContain('\n');
  });

  it('never echoes a secret or a private key', () => {
    const messages = [
      { ...jwt, AUTH_HS256_SECRET: 'hunter2' },
      { ...jwt, AUTH_PUBLIC_KEY: privatePem },
    ].map(refusal);
    expect(messages.join()).not.toMatch(/hunter2|BEGIN/);
  });
});
