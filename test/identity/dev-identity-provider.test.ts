import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../../src/config.ts';
import { createGateway } from '../../src/gateway.ts';
import { createLogger } from '../../src/logger.ts';
import { track } from '../helpers/leftovers.ts';
import { startEmulator } from '../helpers/stack.ts';

describe('the development identity provider (AUTH_MODE=jwt with the embedded emulator, no key source)', () => {
  let url: string;
  let stop: () => Promise<void>;
  const logLines: string[] = [];
  beforeAll(async () => {
    const emulator = await startEmulator();
    // No UPSTREAM_URL: as `npm start` with the embedded emulator (the entry hands the gateway the emulator's URL).
    const config = readConfig({ PORT: '0', HOST: '127.0.0.1', AUTH_MODE: 'jwt' });
    const logs = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    const gateway = createGateway({ config, upstreamUrl: emulator.url, logger: createLogger('info', logs) });
    stop = track(() => gateway.stop());
    url = await gateway.start();
  });
  afterAll(() => stop?.());

  const token = async (user: string) =>
    (await (await fetch(`${url}/dev/identity/token?user=${user}`)).json()) as { token: string; expiresAt: string };
  const gql = async (query: string, bearer?: string) =>
    (await (
      await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
        body: JSON.stringify({ query }),
      })
    ).json()) as any;

  it('makes a token for any user name, which the gateway accepts', async () => {
    const { token: alice, expiresAt } = await token('alice');
    expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
    const submitted = await gql(`mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }`, alice);
    expect(submitted.data.submitTask.id).toMatch(/^task/);
    expect((await gql('{ task(id: "task_x") { __typename } }')).errors[0].extensions).toMatchObject({
      code: 'UNAUTHENTICATED',
      reason: 'NO_TOKEN',
    });
  });

  it('publishes its key set and refuses a bad user name', async () => {
    const jwks = (await (await fetch(`${url}/dev/identity/jwks.json`)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toEqual([expect.objectContaining({ kty: 'EC', crv: 'P-256', alg: 'ES256' })]);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect((await fetch(`${url}/dev/identity/token?user=`)).status).toBe(400);
    expect((await fetch(`${url}/dev/identity/token?user=${'x'.repeat(65)}`)).status).toBe(400);
  });

  it("pre-fills GraphiQL's headers with a development token", async () => {
    const page = await (await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } })).text();
    const bearer = /Bearer ([\w-]+\.[\w-]+\.[\w-]+)/.exec(page)?.[1];
    expect(bearer).toBeDefined();
    expect((await gql('{ task(id: "task_x") { __typename } }', bearer)).data).toEqual({ task: null });
  });

  it('warns at start that anyone can sign in as anyone', () => {
    expect(logLines.join('')).toMatch(/"level":40.*development identity provider: anyone who reaches it signs in as anyone/);
  });

  it('is refused at start whenever UPSTREAM_URL is set', () => {
    expect(() => readConfig({ AUTH_MODE: 'jwt', UPSTREAM_URL: 'https://api.example/v1', UPSTREAM_API_KEY: 'sk-x' })).toThrow(ConfigError);
  });
});
