import { describe, expect, it } from 'vitest';
import { ConfigError, DEMO_API_KEY, readConfig } from '../src/config.ts';
import { describeRedis } from '../src/lib/redis-config.ts';

describe('readConfig', () => {
  it('applies the documented defaults', () => {
    expect(readConfig({})).toEqual({
      port: 4000,
      host: '0.0.0.0',
      upstreamUrl: null,
      upstreamApiKey: DEMO_API_KEY,
      pollIntervalMs: 2_000,
      pollMaxIntervalMs: 5_000,
      pollTimeoutMs: 1_800_000,
      upstreamTimeoutMs: 10_000,
      publicUrl: null,
      maxSubscriptionsPerConnection: 100,
      redis: null,
      trustedDocuments: null,
      graphiql: true,
      corsOrigins: [],
      allowedHosts: ['localhost', '127.0.0.1', '[::1]'],
      upstreamRateLimitPerKey: null,
      maxUpstreamInFlight: 512,
      maxUpstreamInFlightPerKey: null,
      upstreamQueueTimeoutMs: 10_000,
      maxLoopsPerKey: 1_000,
      maxLoops: 100_000,
      logLevel: 'info',
      auth: {
        mode: 'key',
        issuer: null,
        audience: [],
        jwksUrl: null,
        publicKey: null,
        hs256Secret: null,
        devIdentityProvider: false,
        clockToleranceS: 60,
        userClaim: 'sub',
      },
      users: { maxActiveTasks: null, submitsPerMinute: null, dailySpend: null, maxWatchedTasks: 100 },
      tracing: null,
    });
  });

  it('uses no default key against a real upstream', () => {
    expect(readConfig({ UPSTREAM_URL: 'https://api.qingbo.ai/v1' }).upstreamApiKey).toBeNull();
  });

  it('reads CORS_ORIGINS as a list of exact origins', () => {
    expect(readConfig({ CORS_ORIGINS: ' https://app.example , http://localhost:5173,' }).corsOrigins).toEqual([
      'https://app.example',
      'http://localhost:5173',
    ]);
  });

  it('traces only when an OTLP endpoint is set and nothing turns tracing off', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(readConfig({}).tracing).toBeNull();
    expect(readConfig(endpoint).tracing).toEqual({ serviceName: 'task-gateway' });
    expect(readConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces', OTEL_SERVICE_NAME: 'edge' }).tracing).toEqual({
      serviceName: 'edge',
    });
    expect(readConfig({ ...endpoint, OTEL_SDK_DISABLED: 'true' }).tracing).toBeNull();
    expect(readConfig({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }).tracing).toBeNull();
  });

  it('turns GraphiQL and the demo page off with trusted documents, unless GRAPHIQL says otherwise', () => {
    expect(readConfig({ TRUSTED_DOCUMENTS: '/app/persisted-documents.json' }).graphiql).toBe(false);
    expect(readConfig({ TRUSTED_DOCUMENTS: '/app/persisted-documents.json', GRAPHIQL: 'on' }).graphiql).toBe(true);
    expect(readConfig({ GRAPHIQL: 'off' }).graphiql).toBe(false);
  });

  it('is frozen', () => {
    expect(Object.isFrozen(readConfig({}))).toBe(true);
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ POLL_INTERVAL_MS: '-5' }, 'POLL_INTERVAL_MS'],
    [{ POLL_INTERVAL_MS: '6000', POLL_MAX_INTERVAL_MS: '5000' }, 'POLL_MAX_INTERVAL_MS'],
    [{ UPSTREAM_URL: 'not a url' }, 'UPSTREAM_URL'],
    [{ UPSTREAM_URL: 'ftp://x/v1' }, 'UPSTREAM_URL'],
    [{ PUBLIC_URL: 'gateway.example.com' }, 'PUBLIC_URL'],
    [{ REDIS_URL: 'http://localhost' }, 'REDIS_URL'],
    [{ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'b:7000' }, 'REDIS_URL and REDIS_CLUSTER_NODES'],
    [{ REDIS_SENTINELS: 'a:26379', REDIS_CLUSTER_NODES: 'b:7000' }, 'REDIS_SENTINELS and REDIS_CLUSTER_NODES'],
    [{ REDIS_SENTINELS: 'a:26379' }, 'REDIS_SENTINEL_NAME'],
    [{ REDIS_SENTINELS: 'a:26379,b', REDIS_SENTINEL_NAME: 'main' }, 'REDIS_SENTINELS'],
    [{ REDIS_CLUSTER_NODES: 'a:70000' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_CLUSTER_NODES: 'redis://a:7000' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_URL: 'redis://a:6379', REDIS_PREFIX: 'team{a}' }, 'REDIS_PREFIX'],
    [{ REDIS_URL: 'redis://a:6379', REDIS_COMMAND_TIMEOUT_MS: '0' }, 'REDIS_COMMAND_TIMEOUT_MS'],
    [{ UPSTREAM_API_KEY: 'has spaces in it' }, 'UPSTREAM_API_KEY'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ UPSTREAM_RATE_LIMIT_PER_KEY: 'fast' }, 'UPSTREAM_RATE_LIMIT_PER_KEY'],
    [{ UPSTREAM_RATE_LIMIT_PER_KEY: '0' }, 'UPSTREAM_RATE_LIMIT_PER_KEY'],
    [{ MAX_UPSTREAM_IN_FLIGHT_PER_KEY: '0' }, 'MAX_UPSTREAM_IN_FLIGHT_PER_KEY'],
    [{ UPSTREAM_QUEUE_TIMEOUT_MS: '1e3' }, 'UPSTREAM_QUEUE_TIMEOUT_MS'],
    [{ MAX_LOOPS_PER_KEY: '-1' }, 'MAX_LOOPS_PER_KEY'],
    [{ MAX_LOOPS: 'many' }, 'MAX_LOOPS'],
    [{ MAX_SUBSCRIPTIONS_PER_CONNECTION: '0' }, 'MAX_SUBSCRIPTIONS_PER_CONNECTION'],
    [{ GRAPHIQL: 'maybe' }, 'GRAPHIQL'],
    [{ CORS_ORIGINS: '*' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://app.example/' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://app.example,app2.example' }, 'CORS_ORIGINS'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER'],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' },
      'OTEL_TRACES_SAMPLER_ARG',
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER'],
  ])('refuses %o with one line naming %s', (env, name) => {
    let error: unknown;
    try {
      readConfig(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message.startsWith(name)).toBe(true);
    expect((error as Error).message).not.toContain('\n');
  });

  it('never echoes a key or a URL that may carry a password', () => {
    const messages = [
      { UPSTREAM_API_KEY: 'sk secret' },
      { REDIS_URL: 'http://user:hunter2@host' },
      { REDIS_CLUSTER_NODES: 'a:7000', REDIS_PASSWORD: 'hunter2', REDIS_COMMAND_TIMEOUT_MS: 'x' },
      { REDIS_SENTINELS: 'a:1', REDIS_PASSWORD: 'hunter2', REDIS_SENTINEL_PASSWORD: 'secret' },
    ].map((env) => {
      try {
        readConfig(env);
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    });
    expect(messages.join()).not.toMatch(/secret|hunter2/);
    const described = [
      { REDIS_URL: 'redis://user:hunter2@redis:6379/0' },
      { REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'main', REDIS_PASSWORD: 'hunter2', REDIS_SENTINEL_PASSWORD: 'secret' },
      { REDIS_CLUSTER_NODES: 'c1:7000', REDIS_PASSWORD: 'hunter2' },
    ].map((env) => describeRedis(readConfig(env).redis!));
    expect(described).toEqual(['redis://redis:6379', 'sentinel main via s1:26379', 'cluster c1:7000']);
  });

  it('reads one Redis topology, with its prefix and command deadline', () => {
    expect(readConfig({ REDIS_URL: 'redis://r:6379' }).redis).toEqual({
      kind: 'url',
      url: 'redis://r:6379',
      prefix: 'task-gateway',
      commandTimeoutMs: 500,
    });
    const sentinel = { REDIS_SENTINELS: 's1:26379, [::1]:26380', REDIS_SENTINEL_NAME: 'main', REDIS_PASSWORD: 'pw' };
    expect(readConfig({ ...sentinel, REDIS_PREFIX: 'staging', REDIS_COMMAND_TIMEOUT_MS: '250' }).redis).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'main',
      sentinelPassword: null,
      password: 'pw',
      prefix: 'staging',
      commandTimeoutMs: 250,
    });
    expect(readConfig({ REDIS_CLUSTER_NODES: 'c1:7000,c2:7001' }).redis).toMatchObject({
      kind: 'cluster',
      nodes: [
        { host: 'c1', port: 7000 },
        { host: 'c2', port: 7001 },
      ],
      password: null,
    });
  });
});
