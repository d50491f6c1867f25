import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { useAPQ } from '@graphql-yoga/plugin-apq';
import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import { parse, print } from 'graphql';
import type { GraphQLParams, Plugin } from 'graphql-yoga';
import { sha256 } from '../lib/sha256.ts';
import type { GatewayContext } from './context.ts';
import { createPersistedQueryStore, type PersistedQueryStoreOptions } from './persisted-query-store.ts';

/** Trusted documents: operation text by its sha-256 hash (lower-case hex, no prefix), the only operations a production deployment runs. */
export type TrustedDocuments = ReadonlyMap<string, string>;

/** Bounds of the APQ store, in all and per client (see `createPersistedQueryStore` for each default). */
export interface PersistedQueriesOptions extends PersistedQueryStoreOptions {
  /**
   * Who registers an operation, from its context once the caller is accepted: a name no caller can vary at
   * will (a verified user, a key the upstream accepted), else its remote address. Default: the address.
   */
  clientOf?: (context: GatewayContext, address: string) => string;
}

/**
 * Automatic persisted queries (Apollo's APQ: `extensions.persistedQuery.sha256Hash`,
 * `PersistedQueryNotFound`, GET with the hash alone). yoga's plugin speaks the
 * protocol; an operation is stored only once it has parsed and validated and
 * its caller was accepted (its execution begins), as registered by its client
 * (`clientOf`), so junk is never kept and one client's registrations only
 * ever push out its own, however many `Authorization` values it makes up. An
 * operation pushed out is simply sent again in full.
 */
export function useAutomaticPersistedQueries(options: PersistedQueriesOptions = {}): Plugin {
  const { clientOf = (_context, address) => `address:${address}`, ...bounds } = options;
  const store = createPersistedQueryStore(bounds);
  /** Valid registrations waiting for their execution, by request. */
  const validated = new WeakMap<Request, { hash: string; text: string }>();
  return {
    onPluginInit({ addPlugin }) {
      // The plugin would store the text before anything parsed it; `set` is ours, after validation, below.
      addPlugin(useAPQ({ store: { get: (hash) => store.get(hash), set: () => undefined }, hash: sha256 }));
    },
    onValidate({ context }) {
      return ({ valid }) => {
        const { params, request } = context as { params?: GraphQLParams; request: Request };
        const hash = apqHash(params);
        if (!valid || hash === null || typeof params?.query !== 'string' || sha256(params.query) !== hash) return;
        validated.set(request, { hash, text: params.query });
      };
    },
    onExecute({ args }) {
      const context = args.contextValue as unknown as GatewayContext & { request?: Request; req?: IncomingMessage };
      const registration = context.request && validated.get(context.request);
      if (!registration) return;
      store.register(clientOf(context, context.req?.socket.remoteAddress ?? ''), registration.hash, registration.text);
    },
  };
}

function apqHash(params: GraphQLParams | undefined): string | null {
  const persisted = (params?.extensions as { persistedQuery?: { version?: unknown; sha256Hash?: unknown } } | undefined)?.persistedQuery;
  return persisted?.version === 1 && typeof persisted.sha256Hash === 'string' ? persisted.sha256Hash : null;
}

/** GraphQL over HTTP answers a request it cannot run with 400 (with `application/json` and `application/graphql-response+json` alike). */
const refusal = (message: string, code: 'PERSISTED_QUERY_NOT_FOUND' | 'PERSISTED_QUERY_ONLY') => ({
  message,
  extensions: { code, http: { status: 400 } },
});
const ONLY = 'Only trusted documents run here: send documentId (or extensions.persistedQuery.sha256Hash), not the operation text.';

/**
 * Trusted documents: only the operations of the allow-list run, named either by
 * `documentId` (GraphQL over HTTP's persisted documents, what GraphQL Code
 * Generator's clients send: `"sha256:<hex>"`, in a POST body or a GET query
 * string) or by Apollo's `extensions.persistedQuery.sha256Hash` (plain hex).
 * Operation text and unknown documents are refused with 400.
 */
export function useTrustedDocuments(documents: TrustedDocuments): Plugin {
  return usePersistedOperations({
    getPersistedOperation: (id) => documents.get(trustedDocumentHash(id) ?? '') ?? null,
    extractPersistedOperationId: (params, request) => {
      const documentId = (params as { documentId?: unknown }).documentId ?? new URL(request.url).searchParams.get('documentId');
      if (typeof documentId === 'string') return documentId;
      const persisted = (params.extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined)?.persistedQuery;
      return typeof persisted?.sha256Hash === 'string' ? persisted.sha256Hash : null;
    },
    allowArbitraryOperations: false,
    customErrors: {
      notFound: refusal('PersistedQueryNotFound: this operation is not one of the trusted documents.', 'PERSISTED_QUERY_NOT_FOUND'),
      persistedQueryOnly: refusal(ONLY, 'PERSISTED_QUERY_ONLY'),
      keyNotFound: refusal(ONLY, 'PERSISTED_QUERY_ONLY'),
    },
  });
}

/**
 * Whether an operation's text (as graphql-ws sends it) is one of the trusted documents: by its
 * sha-256, or by what it parses to, since clients print a generated document themselves
 * (`print(TaskByIdDocument)`), with other whitespace than the file's text.
 */
export function createTrustedTextCheck(documents: TrustedDocuments): (text: string) => boolean {
  const printed = new Set([...documents.values()].map((text) => print(parse(text, { noLocation: true }))));
  return (text) => {
    if (documents.has(sha256(text))) return true;
    try {
      return printed.has(print(parse(text, { noLocation: true })));
    } catch {
      return false;
    }
  };
}

/** The sha-256 hex of a document id, `<hex>` or `sha256:<hex>` (either case); null for any other form. */
export function trustedDocumentHash(id: string): string | null {
  const hex = id.toLowerCase().replace(/^sha256:/, '');
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

/**
 * Reads a trusted-documents file: a JSON object of `"<id>": "<operation>"`, each id the
 * sha-256 of its operation as plain hex or `sha256:<hex>` (GraphQL Code Generator's client
 * preset writes the latter in `persisted-documents.json`). Every id is checked against its text.
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
  for (const [id, query] of Object.entries(parsed)) {
    const hash = trustedDocumentHash(id);
    if (typeof query !== 'string' || hash === null || sha256(query) !== hash) {
      throw new Error(
        `TRUSTED_DOCUMENTS: the entry ${JSON.stringify(id.slice(0, 23))}... is not the sha-256 of its operation (as hex or sha256:<hex>).`,
      );
    }
    try {
      parse(query, { noLocation: true });
    } catch {
      throw new Error(`TRUSTED_DOCUMENTS: the entry ${JSON.stringify(id.slice(0, 23))}... is not a GraphQL document.`);
    }
    documents.set(hash, query);
  }
  return documents;
}
