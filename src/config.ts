import { LOOPBACK_HOSTS, parseHost } from './http/allowed-hosts.ts';
import { type AuthConfig, readAuthConfig } from './identity/auth-config.ts';
import { ConfigError, type Env, integer, text, url } from './lib/env-values.ts';
import { isHttpUrl } from './lib/http-url.ts';
import { type RedisConfig, readRedisConfig } from './lib/redis-config.ts';

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
  /** The Redis replicas share poll loops, budgets and stores through (`REDIS_URL`, `REDIS_SENTINELS` or `REDIS_CLUSTER_NODES`); null: single process. */
  readonly redis: RedisConfig | null;
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
  /** Upstream requests in flight over all keys, and the connections of the upstream pool. Default 512. */
  readonly maxUpstreamInFlight: number;
  /** An upper bound on one key's short requests in flight; null: its pace × latency alone bounds it. Default null. */
  readonly maxUpstreamInFlightPerKey: number | null;
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
  /** Per-user limits (jwt mode only): `USER_*`. */
  readonly users: UserLimitsConfig;
}

/** Per-user limits in jwt mode; each `null` is off (the default). */
export interface UserLimitsConfig {
  /** `USER_MAX_ACTIVE_TASKS`: unfinished tasks one user may have at once. Default off. */
  readonly maxActiveTasks: number | null;
  /** `USER_SUBMITS_PER_MINUTE`: submits one user may make in any 60 s. Default off. */
  readonly submitsPerMinute: number | null;
  /** `USER_DAILY_SPEND`: quota units (sum of `preConsumedCost`) one user may spend in a UTC day. Default off. */
  readonly dailySpend: number | null;
  /** `USER_MAX_WATCHED_TASKS`: tasks one user may watch at once in one process. Default 100. */
  readonly maxWatchedTasks: number;
}

/** What the gateway reads of the standard `OTEL_*` variables; the SDK reads the others (headers, `OTEL_BSP_*`, timeouts). */
export interface TracingSettings {
  /** `OTEL_SERVICE_NAME`. Default `task-gateway`. */
  readonly serviceName: string;
}

export { type AuthConfig, type AuthMode, DEV_IDENTITY_PROVIDER } from './identity/auth-config.ts';
export { ConfigError } from './lib/env-values.ts';

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

/** The demo key used with the embedded emulator when `UPSTREAM_API_KEY` is unset. */
export const DEMO_API_KEY = 'sk-demo';

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
  const auth = readAuthConfig(env, upstreamUrl);
  const maxLoops = integer(env, 'MAX_LOOPS', 100_000, 1, 10_000_000);
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
    redis: readRedisConfig(env),
    trustedDocuments: text(env, 'TRUSTED_DOCUMENTS'),
    graphiql: onOff(env, 'GRAPHIQL') ?? text(env, 'TRUSTED_DOCUMENTS') === null,
    corsOrigins: origins(env, 'CORS_ORIGINS'),
    allowedHosts: hosts(env, 'ALLOWED_HOSTS', publicUrl),
    upstreamRateLimitPerKey: rate(env, 'UPSTREAM_RATE_LIMIT_PER_KEY', 0.01, 100_000),
    maxUpstreamInFlight: integer(env, 'MAX_UPSTREAM_IN_FLIGHT', 512, 1, 10_000),
    maxUpstreamInFlightPerKey: optionalInteger(env, 'MAX_UPSTREAM_IN_FLIGHT_PER_KEY', 1, 10_000),
    upstreamQueueTimeoutMs: integer(env, 'UPSTREAM_QUEUE_TIMEOUT_MS', 10_000, 100, 600_000),
    // In jwt mode every user shares the server's key: the per-key cap would bound the whole app (USER_MAX_WATCHED_TASKS bounds a user).
    maxLoopsPerKey: integer(env, 'MAX_LOOPS_PER_KEY', auth.mode === 'jwt' ? maxLoops : 1_000, 1, 10_000_000),
    maxLoops,
    logLevel: logLevel as LogLevel,
    auth,
    users: Object.freeze({
      maxActiveTasks: optionalInteger(env, 'USER_MAX_ACTIVE_TASKS', 1, 1_000_000),
      submitsPerMinute: optionalInteger(env, 'USER_SUBMITS_PER_MINUTE', 1, 1_000_000),
      dailySpend: optionalNumber(env, 'USER_DAILY_SPEND', 1e15),
      maxWatchedTasks: integer(env, 'USER_MAX_WATCHED_TASKS', 100, 1, 1_000_000),
    }),
    tracing: tracing(env),
  });
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

/** A whole number from `min` to `max`, or null (off) when unset. */
function optionalInteger(env: Env, name: string, min: number, max: number): number | null {
  return text(env, name) === null ? null : integer(env, name, 0, min, max);
}

/** A number above 0 (decimals allowed), or null (off) when unset. */
function optionalNumber(env: Env, name: string, max: number): number | null {
  const value = text(env, name);
  if (value === null) return null;
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0 || Number(value) > max) {
    throw new ConfigError(`${name} must be a number above 0 (quota units); got ${JSON.stringify(value)}.`);
  }
  return Number(value);
}
