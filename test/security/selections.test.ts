import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../helpers/stack.ts';
import { connectWs } from '../helpers/ws-client.ts';

/** Thousands of mergeable fields: graphql-js compares them pairwise before it can refuse anything. */
const wide = `{ ${'recentTasks { edges { cursor } } '.repeat(1_400)}}`;

describe('an operation that selects too many fields', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.stop());

  it('is refused with BAD_USER_INPUT before validation, over HTTP and over WebSocket', async () => {
    const http = await stack.gql(wide, {}, 'sk-wide');
    expect(http.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(http.errors?.[0]?.message).toBe('The operation selects 4200 fields; at most 1000 are allowed.');

    const client = connectWs(stack.gatewayUrl, 'sk-wide');
    const ws = await new Promise<unknown>((resolve) =>
      client.subscribe({ query: wide }, { next: resolve, error: resolve, complete: () => undefined }),
    );
    await client.dispose();
    expect(JSON.stringify(ws)).toContain('The operation selects 4200 fields; at most 1000 are allowed.');
  });

  it('still lets GraphiQL introspect and ordinary operations run', async () => {
    const { getIntrospectionQuery } = await import('graphql');
    const introspection = await stack.gql(getIntrospectionQuery(), {}, 'sk-wide');
    expect(introspection.errors).toBeUndefined();
    expect(introspection.data.__schema.queryType.name).toBe('Query');
  });
});
