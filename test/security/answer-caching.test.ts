import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/lib/sha256.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const TASK = 'query Task($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status } } }';

describe('caching of answers that depend on a credential', () => {
  let stack: Stack;
  let taskId: string;
  beforeAll(async () => {
    stack = await startStack({ env: { UPSTREAM_API_KEY: 'sk-default' }, emulator: { queuedMs: 60_000 } });
    const submitted = await stack.gql('mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }', {}, 'sk-one');
    taskId = submitted.data.submitTask.id;
  });
  afterAll(() => stack.stop());

  /** A persisted-query GET, the kind a CDN would cache by URL: the same URL for every key. */
  const byHash = (authorization?: string) => {
    const url = new URL(`${stack.gatewayUrl}/graphql`);
    url.searchParams.set('variables', JSON.stringify({ id: taskId }));
    url.searchParams.set('extensions', JSON.stringify({ persistedQuery: { version: 1, sha256Hash: sha256(TASK) } }));
    return fetch(url, { headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } });
  };

  it('marks a persisted-query GET answer private and not to be stored, for each key and for the default key', async () => {
    const registered = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-one' },
      body: JSON.stringify({
        query: TASK,
        variables: { id: taskId },
        extensions: { persistedQuery: { version: 1, sha256Hash: sha256(TASK) } },
      }),
    });
    expect(registered.headers.get('cache-control')).toBe('private, no-store');
    const own = await byHash('Bearer sk-one');
    const other = await byHash('Bearer sk-two');
    const anonymous = await byHash();
    // The same URL answers differently by key: exactly why no shared cache may keep it.
    expect(((await own.json()) as any).data.task.id).toBe(taskId);
    expect(((await other.json()) as any).data.task).toBeNull();
    expect(((await anonymous.json()) as any).data.task).toBeNull();
    for (const response of [own, other, anonymous]) expect(response.headers.get('cache-control')).toBe('private, no-store');
  });

  it('marks errors, refusals and subscription streams the same way', async () => {
    const failed = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ nope }' }),
    });
    const refused = await fetch(`${stack.gatewayUrl}/graphql?query=${encodeURIComponent('{ __typename }')}`);
    const controller = new AbortController();
    const stream = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: 'Bearer sk-one' },
      body: JSON.stringify({ query: `subscription { taskUpdated(id: "${taskId}") { __typename } }` }),
      signal: controller.signal,
    });
    const multipart = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed;subscriptionSpec="1.0"', authorization: 'Bearer sk-one' },
      body: JSON.stringify({ query: `subscription { taskUpdated(id: "${taskId}") { __typename } }` }),
      signal: controller.signal,
    });
    expect(((await failed.json()) as any).errors[0].message).toMatch(/nope/);
    expect([refused.status, stream.status, multipart.status]).toEqual([403, 200, 200]);
    for (const response of [failed, refused, stream, multipart]) expect(response.headers.get('cache-control')).toBe('private, no-store');
    controller.abort();
  });
});
