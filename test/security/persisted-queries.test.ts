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

  /** Registers `query` with its hash (APQ's second request), as `key` or, with none, as this address. */
  const register = async (query: string, key: string | null = null) => {
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ query, extensions: persisted(query) }),
    });
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

  it("keeps another client's registered operation however many one client registers", { timeout: 60_000 }, async () => {
    const mine = 'query MineKept { __typename }';
    expect((await register(mine, 'sk-apq-victim')).data).toEqual({ __typename: 'Query' });
    // 1 100 tiny valid registrations from one client with no key (this address): more than the whole store holds;
    // then 200 from one key, twice what one client may hold.
    const flood = async (count: number, name: string, key: string | null) => {
      for (let at = 0; at < count; at += 50) {
        const batch = Array.from({ length: Math.min(50, count - at) }, (_, i) => register(`query ${name}${at + i} { __typename }`, key));
        for (const answer of await Promise.all(batch)) expect(answer.data).toEqual({ __typename: 'Query' });
      }
    };
    await flood(1_100, 'Flood', null);
    await flood(200, 'KeyFlood', 'sk-apq-flooder');
    expect(await byHash(mine, 'sk-apq-victim')).toEqual({ data: { __typename: 'Query' } });
    // Readable by its hash from anyone, as APQ has it.
    expect(await byHash(mine)).toEqual({ data: { __typename: 'Query' } });
    // The flooders pushed out their own oldest, and kept their newest.
    expect((await byHash('query Flood0 { __typename }')).errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect((await byHash('query Flood1099 { __typename }')).data).toEqual({ __typename: 'Query' });
    expect((await byHash('query KeyFlood0 { __typename }')).errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
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
