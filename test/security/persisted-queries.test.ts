import { Agent, fetch as fetchFrom } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPersistedQueryStore } from '../../src/graphql/persisted-query-store.ts';
import { sha256 } from '../../src/lib/sha256.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const persisted = (query: string) => ({ persistedQuery: { version: 1, sha256Hash: sha256(query) } });

describe('the APQ store: only valid operations, bounded per client', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.stop());

  /** Registers `query` with its hash (APQ's second request), as `key` or, with none, as this address (or `from`, another local one). */
  const register = async (query: string, key: string | null = null, from?: Agent) => {
    const init = {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ query, extensions: persisted(query) }),
    };
    const url = `${stack.gatewayUrl}/graphql`;
    const response = from ? await fetchFrom(url, { ...init, dispatcher: from }) : await fetch(url, init);
    return (await response.json()) as any;
  };
  /** Runs `query` by its hash alone (APQ's first request). */
  const byHash = async (query: string, key: string | null = null) => {
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ extensions: persisted(query) }),
    });
    return (await response.json()) as any;
  };
  const flood = async (count: number, name: string, keyOf: (i: number) => string | null) => {
    for (let at = 0; at < count; at += 50) {
      const batch = Array.from({ length: Math.min(50, count - at) }, (_, i) =>
        register(`query ${name}${at + i} { __typename }`, keyOf(at + i)),
      );
      for (const answer of await Promise.all(batch)) expect(answer.data).toEqual({ __typename: 'Query' });
    }
  };

  it("keeps another client's registered operation however many one client registers, whatever keys it makes up", {
    timeout: 60_000,
  }, async () => {
    // The victim's key is one the upstream accepted (it submitted a task): its registrations are its own.
    const submitted = await register('mutation { submitTask(input: { model: "m", prompt: "p" }) { __typename } }', 'sk-apq-victim');
    expect(submitted.data.submitTask.__typename).toBe('QueuedTask');
    const mine = 'query MineKept { __typename }';
    expect((await register(mine, 'sk-apq-victim')).data).toEqual({ __typename: 'Query' });
    // A client with no key from another local address: registered under that address.
    const elsewhere = new Agent({ localAddress: '127.0.0.2' });
    const theirs = 'query TheirsKept { __typename }';
    expect((await register(theirs, null, elsewhere)).data).toEqual({ __typename: 'Query' });
    await elsewhere.close();
    // From this address: 1 100 tiny valid registrations with no key, more than the whole store holds; then 200 under
    // 200 made-up keys (none the upstream accepted), which count as this address too, not as 200 clients.
    await flood(1_100, 'Flood', () => null);
    await flood(200, 'KeyFlood', (i) => `sk-apq-made-up-${i}`);
    expect(await byHash(mine, 'sk-apq-victim')).toEqual({ data: { __typename: 'Query' } });
    expect(await byHash(theirs)).toEqual({ data: { __typename: 'Query' } });
    // Readable by its hash from anyone, as APQ has it.
    expect(await byHash(mine)).toEqual({ data: { __typename: 'Query' } });
    // The flooder pushed out its own oldest, and kept its newest.
    expect((await byHash('query Flood0 { __typename }')).errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect((await byHash('query KeyFlood0 { __typename }')).errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect((await byHash('query KeyFlood199 { __typename }')).data).toEqual({ __typename: 'Query' });
  });

  it('stores no text that fails to parse or to validate', async () => {
    for (const junk of ['{ nonsense', '{ noSuchField }', 'query { task(id: 1) }', '#'.repeat(1_000)]) {
      const registered = await register(junk);
      expect(registered.errors?.length).toBeGreaterThan(0);
      expect((await byHash(junk)).errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    }
  });
});

describe('createPersistedQueryStore', () => {
  const text = (i: number) => `query Q${i} { __typename }`;

  it('holds at most its total over many clients, least recently used first', () => {
    const store = createPersistedQueryStore({ maxEntries: 20, maxEntriesPerClient: 5 });
    for (let i = 0; i < 100; i += 1) store.register(`client-${i}`, sha256(text(i)), text(i));
    expect(store.size).toBe(20);
    expect(store.get(sha256(text(79)))).toBeUndefined();
    expect(store.get(sha256(text(80)))).toBe(text(80));
  });

  it("bounds one client's text in bytes, and keeps no text larger than that alone", () => {
    const store = createPersistedQueryStore({ maxBytesPerClient: 1_000 });
    const other = 'query Other { __typename }';
    store.register('other', sha256(other), other);
    const big = (i: number) => `query Big${i} { __typename } # ${'x'.repeat(200)}`; // about 460 bytes each
    for (let i = 0; i < 10; i += 1) store.register('flooder', sha256(big(i)), big(i));
    expect([0, 7].map((i) => store.get(sha256(big(i))))).toEqual([undefined, undefined]);
    expect([8, 9].map((i) => store.get(sha256(big(i))))).toEqual([big(8), big(9)]);
    const huge = `query Huge { __typename } # ${'x'.repeat(600)}`;
    store.register('flooder', sha256(huge), huge);
    expect(store.get(sha256(huge))).toBeUndefined();
    expect(store.get(sha256(other))).toBe(other);
  });

  it('counts an operation once, for the client that registered it first', () => {
    const store = createPersistedQueryStore({ maxEntriesPerClient: 2 });
    store.register('a', sha256(text(1)), text(1));
    // b sends the same text: used, not registered again, so b's own registrations cannot push it out.
    store.register('b', sha256(text(1)), text(1));
    store.register('b', sha256(text(2)), text(2));
    store.register('b', sha256(text(3)), text(3));
    store.register('b', sha256(text(4)), text(4));
    expect(store.get(sha256(text(1)))).toBe(text(1));
    expect(store.get(sha256(text(2)))).toBeUndefined();
  });
});
