import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Stack, startStack } from '../helpers/stack.ts';

const SUBMIT = 'mutation { submitTask(input: { model: "gpt-image-2", prompt: "csrf" }) { __typename } }';

/** Opens a WebSocket with `origin`: 'open', or the HTTP status the upgrade was refused with. */
function openWith(stack: Stack, origin: string | undefined): Promise<string | number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${stack.gatewayUrl.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', origin ? { origin } : {});
    socket.once('open', () => {
      socket.close();
      resolve('open');
    });
    socket.once('unexpected-response', (_, response) => resolve(response.statusCode ?? 0));
    socket.once('error', () => resolve('error'));
  });
}

describe('cross-site requests, same origin only (no CORS_ORIGINS)', () => {
  let stack: Stack;
  const submitted = () => stack.emulator!.stats.submits;
  beforeAll(async () => {
    stack = await startStack({ env: { UPSTREAM_API_KEY: 'sk-default' } });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it.each([
    ['application/x-www-form-urlencoded', `query=${encodeURIComponent(SUBMIT)}`],
    ['text/plain', JSON.stringify({ query: SUBMIT })],
    ['multipart/form-data; boundary=x', `--x\r\ncontent-disposition: form-data; name="query"\r\n\r\n${SUBMIT}\r\n--x--\r\n`],
  ])('refuses an operation POSTed as %s (what a form on any site can send) with 415, submitting nothing', async (type, body) => {
    const before = submitted();
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': type, origin: 'https://evil.example' },
      body,
    });
    expect(response.status).toBe(415);
    expect(((await response.json()) as any).errors[0].message).toMatch(/application\/json/);
    expect(submitted()).toBe(before);
  });

  it('still runs an operation POSTed as application/json', async () => {
    expect((await stack.gql(SUBMIT)).data).toEqual({ submitTask: { __typename: 'QueuedTask' } });
  });

  it('answers a foreign origin with no CORS headers, on the preflight and on the request', async () => {
    const preflight = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://evil.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('refuses a WebSocket opened by a page of a foreign origin, and accepts its own origin and non-browser clients', async () => {
    expect(await openWith(stack, 'https://evil.example')).toBe(403);
    expect(await openWith(stack, stack.gatewayUrl)).toBe('open');
    expect(await openWith(stack, undefined)).toBe('open');
  });
});

describe('cross-site requests with CORS_ORIGINS', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { CORS_ORIGINS: 'https://app.example, https://admin.example:8443' } });
  });
  afterAll(async () => {
    await stack.stop();
  });

  const preflight = (origin: string) =>
    fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });

  it('allows each listed origin exactly, without credentials', async () => {
    for (const origin of ['https://app.example', 'https://admin.example:8443']) {
      const response = await preflight(origin);
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
      expect(response.headers.get('access-control-allow-headers')).toMatch(/authorization/);
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    }
    expect(await openWith(stack, 'https://app.example')).toBe('open');
  });

  it('marks every kind of answer at /graphql as varying by Origin, so that no shared cache hands one origin’s answer to another', async () => {
    const url = `${stack.gatewayUrl}/graphql`;
    const get = (query: string) => `${url}?query=${encodeURIComponent(query)}`;
    const json = { 'content-type': 'application/json' };
    const preflighted = { 'apollo-require-preflight': 'true' };
    const watch = JSON.stringify({ query: 'subscription { taskUpdated(id: "task-none") { __typename } }' });
    const kinds: Array<[string, string, RequestInit, number]> = [
      ['a GET query', get('{ __typename }'), { headers: preflighted }, 200],
      ['a POST query', url, { method: 'POST', headers: json, body: JSON.stringify({ query: '{ __typename }' }) }, 200],
      [
        'an operation that does not parse (errors, 200 as application/json has it)',
        url,
        { method: 'POST', headers: json, body: JSON.stringify({ query: '{' }) },
        200,
      ],
      ['a GET without a preflight header (CSRF refusal)', get('{ __typename }'), {}, 403],
      ['a mutation over GET', get('mutation { cancelTask(id: "t") { __typename } }'), { headers: preflighted }, 405],
      ['a form POST', url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }, 415],
      ['an SSE subscription', url, { method: 'POST', headers: { ...json, accept: 'text/event-stream' }, body: watch }, 200],
      [
        'a multipart subscription',
        url,
        {
          method: 'POST',
          headers: { ...json, accept: 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json' },
          body: watch,
        },
        200,
      ],
      ['the GraphiQL page', url, { headers: { accept: 'text/html' } }, 200],
      ['a preflight', url, { method: 'OPTIONS', headers: { 'access-control-request-method': 'POST' } }, 204],
    ];
    for (const [kind, target, init, status] of kinds) {
      for (const origin of ['https://app.example', 'https://evil.example']) {
        const aborter = new AbortController();
        const response = await fetch(target, { ...init, headers: { ...(init.headers as object), origin }, signal: aborter.signal });
        expect({ kind, status: response.status }).toEqual({ kind, status });
        expect({
          kind,
          vary: response.headers
            .get('vary')
            ?.split(/\s*,\s*/)
            .includes('Origin'),
        }).toEqual({ kind, vary: true });
        aborter.abort();
      }
    }
  });

  it('never reflects an origin that is not listed', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'null']) {
      expect((await preflight(origin)).headers.get('access-control-allow-origin')).toBeNull();
    }
    expect(await openWith(stack, 'https://evil.example')).toBe(403);
  });
});
