import { type DocumentNode, parse } from 'graphql';
import { createLruMap } from '../lib/lru-map.ts';

/** Most lexical tokens in one operation, on every transport; more is a syntax error. */
export const MAX_TOKENS = 10_000;

export interface DocumentCacheOptions {
  /** Most distinct operations kept. Default 1 000. */
  maxEntries?: number;
  /**
   * Most operation text kept, in characters, summed over entries. A document parsed without
   * locations costs about 20 to 35 bytes of heap per character of its text (24 for a flat
   * selection, 33 for a typical task query; with locations, 2.5 times that).
   */
  maxChars: number;
  /** Most lexical tokens in one operation; more is a syntax error. Default `MAX_TOKENS` (10 000). */
  maxTokens?: number;
}

/**
 * Parsed operations by their text, for both transports (HTTP and WebSocket):
 * parsed with a token limit and without locations (they would triple each
 * document's memory), and kept only once they validated, bounded by entries
 * and by characters, so that junk never pushes real operations out.
 */
export interface DocumentCache {
  /** The document of a text that validated before; undefined otherwise. */
  get(text: string): DocumentNode | undefined;
  /** Parses `text` (not kept); throws graphql-js's syntax error. */
  parse(text: string): DocumentNode;
  /** Parses `text` with locations, for errors that point into it (not kept). */
  parseLocated(text: string): DocumentNode;
  /** Keeps the document of `text`, which has just validated. */
  keep(text: string, document: DocumentNode): void;
}

export function createDocumentCache(options: DocumentCacheOptions): DocumentCache {
  const { maxEntries = 1_000, maxChars, maxTokens = MAX_TOKENS } = options;
  const documents = createLruMap<string, DocumentNode>({ maxEntries, maxBytes: maxChars, sizeOf: (document) => chars.get(document) ?? 0 });
  const chars = new WeakMap<DocumentNode, number>();
  return {
    get: (text) => documents.get(text),
    parse: (text) => parse(text, { maxTokens, noLocation: true }),
    parseLocated: (text) => parse(text, { maxTokens }),
    keep(text, document) {
      chars.set(document, text.length);
      documents.set(text, document);
    },
  };
}
