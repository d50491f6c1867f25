import { type DocumentNode, GraphQLError, parse, validate } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { createLruMap } from '../lib/lru-map.ts';
import { tooManySelections } from './limits.ts';

export interface HttpDocumentCacheOptions {
  /** Most lexical tokens in one operation; more is a syntax error (as on WebSocket). Default 10 000. */
  maxTokens?: number;
  /** Most distinct operations kept parsed. Default 1 000. */
  maxEntries?: number;
  /**
   * Most operation text kept parsed, in characters, summed over entries. A parsed document without
   * locations costs about 20 to 30 bytes of heap per character. Default 524 288 (512 Ki, about 15 MiB).
   */
  maxChars?: number;
}

/**
 * Replaces yoga's parser and validation cache (1 024 full ASTs with locations for an hour, failures
 * included: about 11 MiB per 250 KB operation) with a bounded one. Operations are parsed with a token
 * limit and without locations; only documents that parsed are kept, bounded by entries and by
 * characters; only a successful validation is remembered. A failing validation is run again on a
 * located parse, so its errors still point into the text, and every error is a fresh object:
 * graphql-js throws one shared "Validation aborted." error, which yoga would otherwise decorate
 * (`extensions.http`) for every later reader, WebSocket ones included.
 */
export function useHttpDocumentCache(options: HttpDocumentCacheOptions = {}): Plugin {
  const {
    maxTokens = 10_000,
    maxEntries = 1_000,
    maxChars = 512 * 1024, // 512 Ki characters
  } = options;
  const texts = new WeakMap<DocumentNode, string>();
  const documents = createLruMap<string, DocumentNode>({
    maxEntries,
    maxBytes: maxChars,
    sizeOf: (document) => texts.get(document)?.length ?? 0,
  });
  const valid = new WeakSet<DocumentNode>();
  return {
    onParse({ params, setParsedDocument, setParseFn }) {
      const text = typeof params.source === 'string' ? params.source : params.source.body;
      const cached = documents.get(text);
      if (cached) return void setParsedDocument(cached);
      setParseFn(() => parse(text, { maxTokens, noLocation: true }));
      return ({ result }) => {
        if (!result || result instanceof Error) return;
        texts.set(result, text);
        documents.set(text, result);
      };
    },
    onValidate({ params, setResult, setValidationFn }) {
      if (valid.has(params.documentAST)) return void setResult([]);
      setValidationFn((schema, document, rules, typeInfo, validationOptions) => {
        const tooMany = tooManySelections(document);
        if (tooMany) return [tooMany];
        const errors = validate(schema, document, rules, typeInfo, validationOptions);
        if (errors.length === 0) {
          valid.add(document);
          return errors;
        }
        const text = texts.get(document);
        const located = text === undefined ? errors : validate(schema, parse(text, { maxTokens }), rules, undefined, validationOptions);
        return located.map(
          (error) =>
            new GraphQLError(error.message, {
              nodes: error.nodes,
              originalError: error.originalError,
              extensions: { ...error.extensions },
            }),
        );
      });
    },
  };
}
