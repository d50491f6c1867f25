import { readFileSync } from 'node:fs';
import { useAPQ } from '@graphql-yoga/plugin-apq';
import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import type { Plugin } from 'graphql-yoga';
import { createLruMap } from '../lib/lru-map.ts';
import { sha256 } from '../lib/sha256.ts';

/** Trusted documents: operation text by its sha-256 hash (hex), the only operations a production deployment runs. */
export type TrustedDocuments = ReadonlyMap<string, string>;

export interface PersistedQueriesOptions {
  /** Operations remembered by hash. Default 1 000. */
  maxEntries?: number;
  /** Bytes of operation text remembered (UTF-16, 2 per character). Default 4 194 304 (4 MiB). */
  maxBytes?: number;
}

/**
 * Automatic persisted queries (Apollo's APQ: `extensions.persistedQuery.sha256Hash`,
 * `PersistedQueryNotFound`, GET with the hash alone), with a store bounded in
 * entries and bytes: an operation pushed out is simply sent again in full by the client.
 */
export function useAutomaticPersistedQueries(options: PersistedQueriesOptions = {}): Plugin {
  const {
    maxEntries = 1_000,
    maxBytes = 4 * 1024 * 1024, // 4 MiB
  } = options;
  const store = createLruMap<string, string>({ maxEntries, maxBytes, sizeOf: (query) => query.length * 2 });
  return useAPQ({ store: { get: (hash) => store.get(hash), set: (hash, query) => store.set(hash, query) }, hash: sha256 });
}

/**
 * Trusted documents: only the operations of the allow-list run, named by
 * `extensions.persistedQuery.sha256Hash` (what Apollo's persisted-queries link
 * and GraphQL Code Generator's `persistedDocuments` send); any operation text is refused.
 */
export function useTrustedDocuments(documents: TrustedDocuments): Plugin {
  return usePersistedOperations({
    getPersistedOperation: (hash) => documents.get(hash) ?? null,
    allowArbitraryOperations: false,
    customErrors: {
      notFound: {
        message: 'PersistedQueryNotFound: this operation is not one of the trusted documents.',
        extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' },
      },
      persistedQueryOnly: {
        message: 'Only trusted documents run here: send extensions.persistedQuery.sha256Hash, not the operation text.',
        extensions: { code: 'PERSISTED_QUERY_ONLY' },
      },
      keyNotFound: {
        message: 'Only trusted documents run here: send extensions.persistedQuery.sha256Hash, not the operation text.',
        extensions: { code: 'PERSISTED_QUERY_ONLY' },
      },
    },
  });
}

/**
 * Reads a trusted-documents file: a JSON object of `"<sha-256 hex>": "<operation>"`
 * (GraphQL Code Generator's `persisted-documents.json`). Every hash is checked against its text.
 */
export function loadTrustedDocuments(path: string): TrustedDocuments {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new Error(`TRUSTED_DOCUMENTS: ${path} is not a readable JSON file.`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`TRUSTED_DOCUMENTS: ${path} must hold a JSON object of "<sha-256>": "<operation>".`);
  }
  const documents = new Map<string, string>();
  for (const [hash, query] of Object.entries(parsed)) {
    if (typeof query !== 'string' || sha256(query) !== hash.toLowerCase()) {
      throw new Error(`TRUSTED_DOCUMENTS: the entry ${JSON.stringify(hash.slice(0, 16))}... is not the sha-256 of its operation.`);
    }
    documents.set(hash.toLowerCase(), query);
  }
  return documents;
}
