import { request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { openSocket } from '../helpers/ws-client.ts';

const ATTACKER = 'rebind.attacker.example:4711';
const SUBMIT = 'mutation { submitTask(input: { model: "gpt-image-2", prompt: "rebound" }) { __typename } }';
const RECENT = '{ recentTasks(first: 50) { edges { node { __typename } } } }';

interface RawAnswer {
  status: number;
  body: string;
}

/** One request with exactly these headers (`fetch` would not send a `Host` of our choosing). */
function send(baseUrl: string, path: string, headers: Record<string, string>, body?: string): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        hostname,
        port,
        path,
        method: body === undefined ? 'GET' : 'POST',
        headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** POSTs an operation as the page of `host` would (its `Host` and `Origin`). */
const postAs = (stack: Stack, host: string, query: string, origin = `http://${host}`) =>
  send(stack.gatewayUrl, '/graphql', { host, origin, 'content-type': 'application/json' }, JSON.stringify({ query }));

/** Opens a WebSocket with this `Host` and `Origin`: 'open', or the status the upgrade was refused with. */
function upgradeAs(stack: Stack, host: string, origin: string | undefined): Promise<'open' | number | string> {
  return new Promise((resolve) => {
    const socket = openSocket(`${stack.gatewayUrl.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', {
      headers: { host },
      ...(origin ? { origin } : {}),
    });
    socket.once('open', () => {
      socket.close();
      resolve('open');
    });
    socket.once('unexpected-response', (_, response) => resolve(response.statusCode ?? 0));
    socket.once('error', (error) => resolve(error.message));
  });
}

describe('DNS rebinding, with a default key and ALLOWED_HOSTS unset', () => {
  let stack: Stack;
  const submits = () => stack.emulator!.stats.submits;
  beforeAll(async () => {
    stack = await startStack({ env: { UPSTREAM_API_KEY: 'sk-default' } });
    // An anonymous caller's task, which recentTasks would show anyone answered with the default key.
    expect((await stack.gql(SUBMIT)).data).toEqual({ submitTask: { __typename: 'QueuedTask' } });
  });
  afterAll(() => stack.stop());

  it('refuses submitTask from a page whose name now resolves here (Host and Origin its own) with 421, submitting nothing', async () => {
    const before = submits();
    const answer = await postAs(stack, ATTACKER, SUBMIT);
    expect(answer.status).toBe(421);
    expect(JSON.parse(answer.body).errors[0].message).toMatch(/ALLOWED_HOSTS/);
    expect(submits()).toBe(before);
  });

  it('refuses recentTasks to that page, so it reads nobody’s tasks', async () => {
    const answer = await postAs(stack, ATTACKER, RECENT);
    expect(answer.status).toBe(421);
    expect(answer.body).not.toContain('QueuedTask');
    expect(JSON.parse(answer.body)).not.toHaveProperty('data');
  });

  it('refuses the same over GET, the demo page and GraphiQL on that name', async () => {
    const query = `/graphql?query=${encodeURIComponent(RECENT)}`;
    expect((await send(stack.gatewayUrl, query, { host: ATTACKER, 'apollo-require-preflight': 'true' })).status).toBe(421);
    expect((await send(stack.gatewayUrl, '/', { host: ATTACKER })).status).toBe(421);
    expect((await send(stack.gatewayUrl, '/graphql', { host: ATTACKER, accept: 'text/html' })).status).toBe(421);
  });

  it('refuses the WebSocket upgrade from that page (no 101), and one that brings no Origin but names that Host', async () => {
    expect(await upgradeAs(stack, ATTACKER, `http://${ATTACKER}`)).toBe(421);
    expect(await upgradeAs(stack, ATTACKER, undefined)).toBe(421);
  });

  it('refuses a WebSocket whose Origin is not allowed even when its Host is (origins are never compared with Host)', async () => {
    const { host } = new URL(stack.gatewayUrl);
    expect(await upgradeAs(stack, host, `http://${ATTACKER}`)).toBe(403);
  });

  it('answers the loopback names on any port, over HTTP and WebSocket', async () => {
    const port = new URL(stack.gatewayUrl).port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LOCALHOST', 'localhost.:8080']) {
      const answer = await postAs(stack, host, '{ __typename }');
      expect([host, answer.status, answer.body]).toEqual([host, 200, '{"data":{"__typename":"Query"}}']);
    }
    expect(await upgradeAs(stack, `localhost:${port}`, `http://localhost:${port}`)).toBe('open');
    // A local page on another port is a local process, which could call the gateway anyway.
    expect(await upgradeAs(stack, `127.0.0.1:${port}`, 'http://localhost:5173')).toBe('open');
  });

  it('keeps probes and metrics open whatever the Host (load balancers probe by address)', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      expect([path, (await send(stack.gatewayUrl, path, { host: ATTACKER })).status]).toEqual([path, 200]);
    }
  });
});

describe('ALLOWED_HOSTS and PUBLIC_URL', () => {
  let listed: Stack;
  let publicUrl: Stack;
  beforeAll(async () => {
    [listed, publicUrl] = await Promise.all([
      startStack({ env: { UPSTREAM_API_KEY: 'sk-default', ALLOWED_HOSTS: 'gw.example.com, api.example.com:8443' } }),
      startStack({ env: { UPSTREAM_API_KEY: 'sk-default', PUBLIC_URL: 'https://public.example.com/' } }),
    ]);
  });
  afterAll(() => Promise.all([listed.stop(), publicUrl.stop()]));

  it('answers exactly the listed names (a port, when given, must match) and nothing else, loopback included', async () => {
    const statuses = async (stack: Stack, hosts: string[]) =>
      Promise.all(hosts.map(async (host) => [host, (await postAs(stack, host, '{ __typename }')).status]));
    expect(
      await statuses(listed, ['gw.example.com', 'gw.example.com:4000', 'api.example.com:8443', 'api.example.com', '127.0.0.1']),
    ).toEqual([
      ['gw.example.com', 200],
      ['gw.example.com:4000', 200],
      ['api.example.com:8443', 200],
      ['api.example.com', 421],
      ['127.0.0.1', 421],
    ]);
    expect(await upgradeAs(listed, 'gw.example.com', 'https://gw.example.com')).toBe('open');
    expect(await upgradeAs(listed, 'localhost', 'http://localhost')).toBe(421);
  });

  it('answers the host of PUBLIC_URL besides the loopback names', async () => {
    expect((await postAs(publicUrl, 'public.example.com', '{ __typename }', 'https://public.example.com')).status).toBe(200);
    expect((await postAs(publicUrl, 'localhost', '{ __typename }')).status).toBe(200);
    expect((await postAs(publicUrl, ATTACKER, '{ __typename }')).status).toBe(421);
    expect(await upgradeAs(publicUrl, 'public.example.com', 'https://public.example.com')).toBe('open');
  });
});

describe('ALLOWED_HOSTS=* with a default key', () => {
  let stack: Stack;
  const warnings: string[] = [];
  beforeAll(async () => {
    const destination = new Writable({
      write(chunk, _encoding, done) {
        warnings.push(JSON.parse(chunk.toString()).msg);
        done();
      },
    });
    stack = await startStack({
      env: { UPSTREAM_API_KEY: 'sk-default', ALLOWED_HOSTS: '*', CORS_ORIGINS: 'https://app.example' },
      logger: createLogger('warn', destination),
    });
  });
  afterAll(() => stack.stop());

  it('answers any Host, says at start what that exposes, and still lets only CORS_ORIGINS pages open WebSockets', async () => {
    expect(warnings).toEqual([expect.stringMatching(/^ALLOWED_HOSTS=\* with a default key/)]);
    expect((await postAs(stack, ATTACKER, '{ __typename }')).status).toBe(200);
    expect(await upgradeAs(stack, ATTACKER, `http://${ATTACKER}`)).toBe(403);
    expect(await upgradeAs(stack, ATTACKER, 'https://app.example')).toBe('open');
  });
});

describe('ALLOWED_HOSTS in the configuration', () => {
  it('defaults to the loopback names and the host of PUBLIC_URL', () => {
    expect(readConfig({}).allowedHosts).toEqual(['localhost', '127.0.0.1', '[::1]']);
    expect(readConfig({ PUBLIC_URL: 'https://Gw.Example.com:8443/base' }).allowedHosts).toEqual([
      'localhost',
      '127.0.0.1',
      '[::1]',
      'gw.example.com',
    ]);
  });

  it('takes comma-separated names, lower-cased, and * alone for any', () => {
    expect(readConfig({ ALLOWED_HOSTS: ' A.example , b.example:8080,[::1]:4000' }).allowedHosts).toEqual([
      'a.example',
      'b.example:8080',
      '[::1]:4000',
    ]);
    expect(readConfig({ ALLOWED_HOSTS: '*' }).allowedHosts).toBeNull();
  });

  it.each(['https://a.example', 'a.example/path', '*.example.com', 'a.example, *', 'user@a.example', 'a.example:99999', ','])(
    'refuses %j with one line naming ALLOWED_HOSTS',
    (value) => {
      expect(() => readConfig({ ALLOWED_HOSTS: value })).toThrow(ConfigError);
      expect(() => readConfig({ ALLOWED_HOSTS: value })).toThrow(/^ALLOWED_HOSTS must/);
    },
  );
});
