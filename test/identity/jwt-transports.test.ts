import { Writable } from 'node:stream';
import { base64url, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createManualClock, createManualScheduler } from '../helpers/clock.ts';
import { startIdentityProvider, type TestIdentityProvider } from '../helpers/identity-provider.ts';
import { firstOutcome, refusalOf, TRANSPORTS } from '../helpers/jwt-transports.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const SERVER_KEY = 'sk-server-held-key';
const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "fox" }) { ... on BaseTask { id } } }`;
const WATCH = `subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status } } }`;

describe('jwt mode against a real key-set endpoint, over HTTP, SSE, multipart and WebSocket', () => {
  const clock = createManualClock();
  const scheduler = createManualScheduler(clock);
  const logLines: string[] = [];
  let idp: TestIdentityProvider;
  let stack: Stack;
  let taskId: string;

  beforeAll(async () => {
    idp = await startIdentityProvider({ now: clock.now });
    const logs = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    stack = await startStack({
      env: { ...idp.env, UPSTREAM_API_KEY: SERVER_KEY },
      emulator: { now: clock.now, queuedMs: 3_600_000 },
      now: clock.now,
      scheduler,
      random: () => 0.5,
      logger: createLogger('trace', logs),
    });
    const submitted = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await idp.sign()}` },
      body: JSON.stringify({ query: SUBMIT }),
    });
    taskId = ((await submitted.json()) as any).data.submitTask.id;
  });
  afterAll(async () => {
    await stack?.stop();
    await idp?.stop();
  });

  const outcome = (transport: (typeof TRANSPORTS)[number], authorization: string | null) =>
    transport === 'http'
      ? firstOutcome(
          stack.gatewayUrl,
          transport,
          `query($id: ID!) { task(id: $id) { __typename ... on BaseTask { id } } }`,
          { id: taskId },
          authorization,
        )
      : firstOutcome(stack.gatewayUrl, transport, WATCH, { id: taskId }, authorization);

  it.each(TRANSPORTS)('accepts a valid token and makes the upstream request with the server-held key (%s)', async (transport) => {
    const result = await outcome(transport, `Bearer ${await idp.sign()}`);
    expect(result.closed).toBeUndefined();
    expect(result.result?.errors).toBeUndefined();
    expect(result.result?.data).toMatchObject(
      transport === 'http' ? { task: { id: taskId } } : { taskUpdated: { id: taskId, status: 'QUEUED' } },
    );
  });

  /** Each bad token, with the reason it must be refused for. */
  const badTokens: Array<[string, () => Promise<string | null>, string]> = [
    ['no token at all', async () => null, 'NO_TOKEN'],
    ['the upstream key itself', async () => `Bearer ${SERVER_KEY}`, 'MALFORMED'],
    ['not a bearer header', async () => `Basic ${Buffer.from('alice:pw').toString('base64')}`, 'MALFORMED'],
    ['expired (past exp and the 60 s tolerance)', () => bearer({ exp: seconds() - 61 }), 'EXPIRED'],
    ['not yet valid (nbf past the tolerance)', () => bearer({ nbf: seconds() + 61 }), 'NOT_YET_VALID'],
    ['a wrong issuer', () => bearer({ iss: 'https://evil.example/' }), 'WRONG_ISSUER'],
    ['a wrong audience', () => bearer({ aud: 'https://another-api.example' }), 'WRONG_AUDIENCE'],
    ['no exp', () => bearer({ exp: undefined }), 'MISSING_CLAIM'],
    ['no user claim', () => bearer({ sub: undefined }), 'MISSING_CLAIM'],
    ['alg none', async () => `Bearer ${unsigned()}`, 'ALGORITHM_NOT_ALLOWED'],
    ['HMAC keyed with the public key', async () => `Bearer ${await hmacWithPublicKey()}`, 'ALGORITHM_NOT_ALLOWED'],
    ['signed by another key under the same kid', async () => bearer({}, { keys: await generateKeyPair('RS256') }), 'BAD_SIGNATURE'],
    ['a tampered payload', async () => `Bearer ${await tampered()}`, 'BAD_SIGNATURE'],
    ['an unknown kid', () => bearer({}, { header: { kid: 'no-such-key' } }), 'UNKNOWN_KEY'],
  ];
  const seconds = () => Math.floor(clock.now() / 1000);
  const bearer = async (...args: Parameters<TestIdentityProvider['sign']>) => `Bearer ${await idp.sign(...args)}`;
  const unsigned = () => {
    const part = (value: object) => base64url.encode(JSON.stringify(value));
    return `${part({ alg: 'none', typ: 'JWT' })}.${part({ iss: idp.issuer, aud: idp.audience, sub: 'alice', exp: seconds() + 3_600 })}.`;
  };
  const hmacWithPublicKey = async () =>
    new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'HS256', kid: idp.kid() })
      .setIssuer(idp.issuer)
      .setAudience(idp.audience)
      .setExpirationTime(seconds() + 3_600)
      .sign(new TextEncoder().encode(await idp.publicPem()));
  const tampered = async () => {
    const [header, payload, signature] = (await idp.sign()).split('.');
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload!)));
    return [header, base64url.encode(JSON.stringify({ ...claims, sub: 'mallory' })), signature].join('.');
  };

  describe.each(TRANSPORTS)('over %s', (transport) => {
    it.each(badTokens)('refuses %s as UNAUTHENTICATED, saying why', async (_name, token, reason) => {
      const authorization = await token();
      const refusal = refusalOf(await outcome(transport, authorization));
      expect(refusal).toMatchObject({ code: transport === 'websocket' ? 4403 : 'UNAUTHENTICATED/401', reason });
      expect(refusal!.message.length).toBeGreaterThan(10);
      const secret = authorization?.split(' ')[1];
      if (secret) expect(refusal!.message).not.toContain(secret);
    });
  });

  it('puts no token in any log line or metric', async () => {
    const token = await idp.sign({ sub: 'log-watcher' });
    for (const transport of TRANSPORTS) {
      await outcome(transport, `Bearer ${token}`);
      await outcome(transport, `Bearer ${token}x`);
    }
    const metrics = await (await fetch(`${stack.gatewayUrl}/metrics`)).text();
    const [header, payload, signature] = token.split('.');
    expect(logLines.length).toBeGreaterThan(0);
    for (const text of [logLines.join('\n'), metrics]) {
      for (const part of [header, payload, signature, SERVER_KEY, 'log-watcher']) expect(text).not.toContain(part);
    }
  });
});
