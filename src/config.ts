import { createPublicKey } from 'node:crypto';
import { LOOPBACK_HOSTS, parseHost } from './http/allowed-hosts.ts';
import { isHttpUrl } from './lib/http-url.ts';

/**
 * The gateway's configuration: read from the environment once, validated,
 * typed and frozen. No other module reads `process.env`.
 */
export interface Config {
  /** Where the gateway listens. Default 4000. */
  readonly port: number;
  /** Default 0.0.0.0. */
  readonly host: string;
  /** Upstream base URL including `/v1`; null starts the embedded emulator. */
  readonly upstreamUrl: string | null;
  /** Key for requests that bring none; null: such requests are refused. */
  readonly upstreamApiKey: string | null;
  /** First and minimum poll interval. Default 2 000 ms. */
  readonly pollIntervalMs: number;
  /** Longest poll interval while nothing changes. Default 5 000 ms. */
  readonly pollMaxIntervalMs: number;
  /** How long one task is watched before subscribers get `TIMEOUT`. Default 1 800 000 ms (30 min). */
  readonly pollTimeoutMs: number;
  /** Deadline of one upstream request. Default 10 000 ms. */
  readonly upstreamTimeoutMs: number;
  /** The gateway's public base URL, for `callback_url`; null: no callbacks. */
  readonly publicUrl: string | null;
  /** Subscriptions one WebSocket may hold. Default 100. */
  readonly maxSubscriptionsPerConnection: number;
  /** Shared polling and per-key budgets across replicas; null: single process. */
  readonly redisUrl: string | null;
  /** A JSON file of trusted documents (`{"<sha-256>": "<operation>"}`); when set only those operations run. Null: any operation, APQ on. */
  readonly trustedDocuments: string | null;
  /** Whether GraphiQL (`/graphql` in a browser) and the demo page (`/`) are served. Default: yes, but no with `trustedDocuments` (neither can run there). */
  readonly graphiql: boolean;
  /** Origins (`https://app.example.com`) whose pages may call the gateway from a browser; empty: same origin only. */
  readonly corsOrigins: readonly string[];
  /**
   * `Host` values the gateway answers GraphQL, the demo page and WebSockets on (`host` or `host:port`; without a
   * port, any port), against DNS rebinding. Default: `localhost`, `127.0.0.1`, `[::1]` and the host of `PUBLIC_URL`.
   * null: any host (`ALLOWED_HOSTS=*`).
   */
  readonly allowedHosts: readonly string[] | null;
  /** Upstream requests per second allowed per key; null: learned from the upstream's 429s. */
  readonly upstreamRateLimitPerKey: number | null;
  /** Upstream requests one key may have in flight. Default 8. */
  readonly maxUpstreamInFlightPerKey: number;
  /** Longest wait of a query, submit or cancel in the gateway's queue for its key's budget. Default 10 000 ms. */
  readonly upstreamQueueTimeoutMs: number;
  /** Poll loops (watched tasks) one key may have. Default 1 000. */
  readonly maxLoopsPerKey: number;
  /** Poll loops over all keys. Default 100 000. */
  readonly maxLoops: number;
  readonly logLevel: LogLevel;
  /** Who the callers are (`AUTH_MODE` and the `AUTH_*` variables). */
  readonly auth: AuthConfig;
  /** OpenTelemetry traces, when an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`); null: no tracing, no SDK loaded. */
  readonly tracing: TracingSettings | null;
}

/** What the gateway reads of the standard `OTEL_*` variables; the SDK reads the others (headers, `OTEL_BSP_*`, timeouts). */
export interface TracingSettings {
  /** `OTEL_SERVICE_NAME`. Default `task-gateway`. */
  readonly serviceName: string;
}

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

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

/** A bad value: its message is one line that names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The demo key used with the embedded emulator when `UPSTREAM_API_KEY` is unset. */
export const DEMO_API_KEY = 'sk-demo';

type Env = Record<string, string | undefined>;

/** Reads and validates the configuration; throws `ConfigError` naming the first bad variable. */
export function readConfig(env: Env): Config {
  const upstreamUrl = url(env, 'UPSTREAM_URL');
  const pollIntervalMs = integer(env, 'POLL_INTERVAL_MS', 2_000, 10, 3_600_000);
  const pollMaxIntervalMs = integer(env, 'POLL_MAX_INTERVAL_MS', Math.max(5_000, pollIntervalMs), 10, 3_600_000);
  if (pollMaxIntervalMs < pollIntervalMs) {
    throw new ConfigError(`POLL_MAX_INTERVAL_MS (${pollMaxIntervalMs}) must not be below POLL_INTERVAL_MS (${pollIntervalMs}).`);
  }
  const apiKey = text(env, 'UPSTREAM_API_KEY');
  if (apiKey !== null && !/^[\x21-\x7e]{1,512}$/.test(apiKey)) {
    throw new ConfigError('UPSTREAM_API_KEY must be 1 to 512 visible ASCII characters with no spaces.');
  }
  const logLevel = (text(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(logLevels as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${logLevels.join(', ')}; got ${JSON.stringify(logLevel)}.`);
  }
  const auth = authConfig(env, upstreamUrl);
  const upstreamApiKey = apiKey ?? (upstreamUrl === null ? DEMO_API_KEY : null);
  if (auth.mode === 'jwt' && upstreamApiKey === null) {
    throw new ConfigError('UPSTREAM_API_KEY is required with AUTH_MODE=jwt: the gateway makes every upstream request with it.');
  }
  const publicUrl = url(env, 'PUBLIC_URL')?.replace(/\/+$/, '') ?? null;
  return Object.freeze({
    port: integer(env, 'PORT', 4000, 0, 65_535),
    host: text(env, 'HOST') ?? '0.0.0.0',
    upstreamUrl,
    upstreamApiKey,
    pollIntervalMs,
    pollMaxIntervalMs,
    pollTimeoutMs: integer(env, 'POLL_TIMEOUT_MS', 1_800_000, 1_000, 86_400_000),
    upstreamTimeoutMs: integer(env, 'UPSTREAM_TIMEOUT_MS', 10_000, 100, 600_000),
    publicUrl,
    maxSubscriptionsPerConnection: integer(env, 'MAX_SUBSCRIPTIONS_PER_CONNECTION', 100, 1, 100_000),
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    trustedDocuments: text(env, 'TRUSTED_DOCUMENTS'),
    graphiql: onOff(env, 'GRAPHIQL') ?? text(env, 'TRUSTED_DOCUMENTS') === null,
    corsOrigins: origins(env, 'CORS_ORIGINS'),
    allowedHosts: hosts(env, 'ALLOWED_HOSTS', publicUrl),
    upstreamRateLimitPerKey: rate(env, 'UPSTREAM_RATE_LIMIT_PER_KEY', 0.01, 100_000),
    maxUpstreamInFlightPerKey: integer(env, 'MAX_UPSTREAM_IN_FLIGHT_PER_KEY', 8, 1, 1_000),
    upstreamQueueTimeoutMs: integer(env, 'UPSTREAM_QUEUE_TIMEOUT_MS', 10_000, 100, 600_000),
    maxLoopsPerKey: integer(env, 'MAX_LOOPS_PER_KEY', 1_000, 1, 10_000_000),
    maxLoops: integer(env, 'MAX_LOOPS', 100_000, 1, 10_000_000),
    logLevel: logLevel as LogLevel,
    auth,
    tracing: tracing(env),
  });
}

function authConfig(env: Env, upstreamUrl: string | null): AuthConfig {
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

/** A comma-separated list of non-empty entries. */
function list(env: Env, name: string): string[] {
  return (text(env, name) ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

const otlpProtocols = ['http/protobuf', 'http/json'];
const samplers = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'];

/**
 * Tracing is on when an OTLP endpoint is set (for all signals or for traces) and neither
 * `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` turns it off. The SDK would only
 * log a bad value and carry on with its default; here it stops start-up, like every other variable.
 */
function tracing(env: Env): TracingSettings | null {
  const endpoint = url(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? url(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (endpoint === null || text(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return null;
  const exporter = text(env, 'OTEL_TRACES_EXPORTER')?.toLowerCase() ?? 'otlp';
  if (exporter === 'none') return null;
  if (exporter !== 'otlp') throw new ConfigError(`OTEL_TRACES_EXPORTER must be otlp or none; got ${JSON.stringify(exporter)}.`);
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const protocol = text(env, name);
    if (protocol !== null && !otlpProtocols.includes(protocol)) {
      throw new ConfigError(`${name} must be ${otlpProtocols.join(' or ')} (OTLP over HTTP); got ${JSON.stringify(protocol)}.`);
    }
  }
  const sampler = text(env, 'OTEL_TRACES_SAMPLER');
  if (sampler !== null && !samplers.includes(sampler)) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER must be one of ${samplers.join(', ')}; got ${JSON.stringify(sampler)}.`);
  }
  const ratio = text(env, 'OTEL_TRACES_SAMPLER_ARG');
  if (ratio !== null && sampler?.endsWith('traceidratio') && !/^(0(\.\d+)?|1(\.0+)?)$/.test(ratio)) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1; got ${JSON.stringify(ratio)}.`);
  }
  return Object.freeze({ serviceName: text(env, 'OTEL_SERVICE_NAME') ?? 'task-gateway' });
}

function text(env: Env, name: string): string | null {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? null : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = text(env, name);
  if (value === null) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}; got ${JSON.stringify(value)}.`);
  }
  return Number(value);
}

/** `on` or `off` (also `true`/`false`, `1`/`0`), or null when unset. */
function onOff(env: Env, name: string): boolean | null {
  const value = text(env, name)?.toLowerCase() ?? null;
  if (value === null) return null;
  if (['on', 'true', '1'].includes(value)) return true;
  if (['off', 'false', '0'].includes(value)) return false;
  throw new ConfigError(`${name} must be on or off; got ${JSON.stringify(value)}.`);
}

/** A comma-separated list of exact origins (scheme, host, port; no path, no wildcard). */
function origins(env: Env, name: string): readonly string[] {
  const list = (text(env, name) ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  for (const entry of list) {
    if (!isHttpUrl(entry) || new URL(entry).origin !== entry) {
      throw new ConfigError(
        `${name} must be comma-separated origins such as https://app.example.com (no path, no wildcard); got ${JSON.stringify(entry)}.`,
      );
    }
  }
  return Object.freeze(list);
}

/** A comma-separated list of `host[:port]` names, lower-cased; `*` alone for any; unset: loopback names and `publicUrl`'s host. */
function hosts(env: Env, name: string, publicUrl: string | null): readonly string[] | null {
  const value = text(env, name);
  if (value === '*') return null;
  if (value === null) return Object.freeze([...LOOPBACK_HOSTS, ...(publicUrl ? [new URL(publicUrl).hostname] : [])]);
  const list = value
    .split(',')
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry !== '');
  for (const entry of list) {
    if (parseHost(entry) === null) {
      throw new ConfigError(
        `${name} must be comma-separated host names, each with an optional port (api.example.com, localhost:4000, [::1]), or * alone for any; got ${JSON.stringify(entry)}.`,
      );
    }
  }
  if (list.length === 0) throw new ConfigError(`${name} must name at least one host, or be * for any.`);
  return Object.freeze(list);
}

/** A positive decimal number (requests per second), or null when unset. */
function rate(env: Env, name: string, min: number, max: number): number | null {
  const value = text(env, name);
  if (value === null) return null;
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`${name} must be a number of requests per second from ${min} to ${max}; got ${JSON.stringify(value)}.`);
  }
  return Number(value);
}

function url(env: Env, name: string, protocols = ['http:', 'https:']): string | null {
  const value = text(env, name);
  if (value === null) return null;
  // The value itself is never echoed: a URL may carry a password.
  if (!isHttpUrl(value, protocols)) throw new ConfigError(`${name} must be an absolute URL using ${protocols.join(' or ')}.`);
  return value;
}
