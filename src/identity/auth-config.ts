import { createPublicKey } from 'node:crypto';
import { ConfigError, type Env, integer, list, text, url } from '../lib/env-values.ts';

/** `key`: clients bring upstream API keys (the default). `jwt`: end users bring tokens; the gateway holds `UPSTREAM_API_KEY`. */
export type AuthMode = 'key' | 'jwt';

/** Token checks in jwt mode. In key mode every field but `mode` is null (or its default) and unused. */
export interface AuthConfig {
  /** `AUTH_MODE`. Default `key`. */
  readonly mode: AuthMode;
  /** `AUTH_ISSUER`: the `iss` every token must carry. Required in jwt mode (defaults to the development provider's). */
  readonly issuer: string | null;
  /** `AUTH_AUDIENCE`: comma-separated; a token's `aud` must name one of them. Required in jwt mode (defaults to the development provider's). */
  readonly audience: readonly string[];
  /** `AUTH_JWKS_URL`: the identity provider's key set. */
  readonly jwksUrl: string | null;
  /** `AUTH_PUBLIC_KEY`: one PEM public key (SPKI) or certificate; `\n` escapes are read as line breaks. */
  readonly publicKey: string | null;
  /** `AUTH_HS256_SECRET`: a shared secret (at least 32 characters) for providers that sign with HS256. */
  readonly hs256Secret: string | null;
  /** jwt mode with the embedded emulator and none of the three above: the gateway serves a development identity provider. */
  readonly devIdentityProvider: boolean;
  /** `AUTH_CLOCK_TOLERANCE_S`: leeway on `exp` and `nbf`, in seconds. Default 60. */
  readonly clockToleranceS: number;
  /** `AUTH_USER_CLAIM`: the claim naming the user; a dotted path reaches nested claims. Default `sub`. */
  readonly userClaim: string;
}

/** Issuer and audience of the development identity provider (jwt mode, embedded emulator, no key source). */
export const DEV_IDENTITY_PROVIDER = Object.freeze({ issuer: 'urn:task-gateway:dev-identity-provider', audience: 'task-gateway' });

/** `AUTH_MODE` and the `AUTH_*` variables, validated (called by `readConfig`); throws `ConfigError` naming the first bad one. */
export function readAuthConfig(env: Env, upstreamUrl: string | null): AuthConfig {
  const mode = (text(env, 'AUTH_MODE') ?? 'key').toLowerCase();
  if (mode !== 'key' && mode !== 'jwt') throw new ConfigError(`AUTH_MODE must be key or jwt; got ${JSON.stringify(mode)}.`);
  const jwksUrl = url(env, 'AUTH_JWKS_URL');
  const publicKey = pemPublicKey(env, 'AUTH_PUBLIC_KEY');
  const hs256Secret = text(env, 'AUTH_HS256_SECRET');
  if (hs256Secret !== null && hs256Secret.length < 32) {
    throw new ConfigError('AUTH_HS256_SECRET must be at least 32 characters (HS256 needs a 256-bit secret).');
  }
  const sources = [jwksUrl, publicKey, hs256Secret].filter((source) => source !== null).length;
  if (sources > 1) throw new ConfigError('AUTH_JWKS_URL, AUTH_PUBLIC_KEY, AUTH_HS256_SECRET: set only one of them.');
  const devIdentityProvider = mode === 'jwt' && sources === 0;
  if (devIdentityProvider && upstreamUrl !== null) {
    throw new ConfigError(
      'AUTH_MODE=jwt needs AUTH_JWKS_URL, AUTH_PUBLIC_KEY or AUTH_HS256_SECRET with UPSTREAM_URL set (the development identity provider runs only with the embedded emulator).',
    );
  }
  const userClaim = text(env, 'AUTH_USER_CLAIM') ?? 'sub';
  if (userClaim.length > 256 || userClaim.split('.').some((part) => part === '')) {
    throw new ConfigError(
      `AUTH_USER_CLAIM must be a claim name or a dotted path such as app_metadata.user_id; got ${JSON.stringify(userClaim)}.`,
    );
  }
  let issuer = text(env, 'AUTH_ISSUER');
  let audience = list(env, 'AUTH_AUDIENCE');
  if (devIdentityProvider) {
    issuer ??= DEV_IDENTITY_PROVIDER.issuer;
    if (audience.length === 0) audience = [DEV_IDENTITY_PROVIDER.audience];
  }
  if (mode === 'jwt' && issuer === null)
    throw new ConfigError("AUTH_ISSUER is required with AUTH_MODE=jwt (the iss of your provider's tokens).");
  if (mode === 'jwt' && audience.length === 0)
    throw new ConfigError('AUTH_AUDIENCE is required with AUTH_MODE=jwt (the aud your provider puts in tokens for this API).');
  return Object.freeze({
    mode,
    issuer,
    audience: Object.freeze(audience),
    jwksUrl,
    publicKey,
    hs256Secret,
    devIdentityProvider,
    clockToleranceS: integer(env, 'AUTH_CLOCK_TOLERANCE_S', 60, 0, 3_600),
    userClaim,
  });
}

/** A PEM public key or certificate; literal `\n` sequences (one-line environment values) read as line breaks. */
function pemPublicKey(env: Env, name: string): string | null {
  const value = text(env, name)?.replace(/\\n/g, '\n');
  if (value === undefined || value === null) return null;
  if (/PRIVATE KEY/.test(value))
    throw new ConfigError(`${name} must be a public key: this is a private key, which the gateway never needs.`);
  if (!/^-----BEGIN (PUBLIC KEY|CERTIFICATE)-----/.test(value)) {
    throw new ConfigError(`${name} must be a PEM public key (-----BEGIN PUBLIC KEY-----) or certificate (-----BEGIN CERTIFICATE-----).`);
  }
  let key: ReturnType<typeof createPublicKey>;
  try {
    key = createPublicKey(value);
  } catch {
    throw new ConfigError(`${name} is not a readable PEM public key or certificate.`);
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const type = key.asymmetricKeyType === 'ec' ? `ec ${curve}` : key.asymmetricKeyType;
  if (!['rsa', 'rsa-pss', 'ed25519', 'ec prime256v1', 'ec secp384r1', 'ec secp521r1'].includes(type ?? '')) {
    throw new ConfigError(`${name} must be an RSA, EC (P-256, P-384, P-521) or Ed25519 key; got ${type ?? 'an unknown type'}.`);
  }
  return value;
}
