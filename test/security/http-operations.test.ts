import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TOKENS } from '../../src/graphql/document-cache.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { connectWs } from '../helpers/ws-client.ts';

/**
 * Enough selections of one field for graphql-js to give up on comparing them ("Validation aborted.",
 * from about 800), yet under the gateway's own cap of 1,000 selections, which would refuse it first.
 */
const aborting = (tag: string) => `{ ${'__typename '.repeat(900)}} #${tag}`;

describe('operations over HTTP', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { UPSTREAM_API_KEY: 'sk-default' } });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it('refuses an operation of more than MAX_TOKENS tokens as a syntax error, as over WebSocket', async () => {
    const { errors, data } = await stack.gql(`{ ${'__typename '.repeat(MAX_TOKENS + 1)}}`);
    expect(data).toBeUndefined();
    expect(errors?.[0]?.message).toMatch(new RegExp(`more th\\w+ ${MAX_TOKENS} tokens`));
  });

  it('still points validation errors at their place in the text', async () => {
    const { errors } = await stack.gql('{\n  __typename\n  nope\n}');
    expect(errors?.[0]).toMatchObject({ message: expect.stringContaining('nope'), locations: [{ line: 3, column: 3 }] });
  });

  it('answers a repeated operation the same way each time', async () => {
    for (let i = 0; i < 3; i++) expect(await stack.gql('{ __typename }')).toEqual({ data: { __typename: 'Query' } });
  });

  it('never lets HTTP decorations of the shared "Validation aborted." error reach WebSocket clients', async () => {
    const overHttp = await stack.gql(aborting('http'));
    expect(overHttp.errors?.map((error) => error.message)).toContain('Validation aborted.');
    const client = connectWs(stack.gatewayUrl, 'sk-default');
    try {
      const errors = await new Promise<readonly any[]>((resolve, reject) => {
        client.subscribe(
          { query: aborting('ws') },
          { next: () => reject(new Error('got data')), error: resolve as never, complete: () => undefined },
        );
      });
      expect(errors.map((error) => error.message)).toContain('Validation aborted.');
      for (const error of errors) expect(error.extensions?.http).toBeUndefined();
    } finally {
      await client.dispose();
    }
    // And a second HTTP response gets its own error, not one decorated twice.
    expect((await stack.gql(aborting('again'))).errors?.map((error) => error.message)).toContain('Validation aborted.');
  });
});
