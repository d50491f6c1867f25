import { type DocumentNode, GraphQLError, validate } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { createDocumentCache, type DocumentCacheOptions } from './document-cache.ts';
import { tooManySelections } from './limits.ts';

export interface HttpDocumentCacheOptions {
  /** Most lexical tokens in one operation; more is a syntax error (as on WebSocket). Default: the document cache's. */
  maxTokens?: DocumentCacheOptions['maxTokens'];
  /** Most distinct operations kept parsed. Default: the document cache's. */
  maxEntries?: DocumentCacheOptions['maxEntries'];
  /** Most operation text kept parsed, in characters, summed over entries (the cost of one: `DocumentCacheOptions.maxChars`). Default 524 288 (512 Ki). */
  maxChars?: number;
}

/**
 * Replaces yoga's parser and validation cache (1 024 full ASTs with locations for an hour, failures
 * included: about 11 MiB per 250 KB operation) with the bounded `DocumentCache` the WebSocket path
 * uses too: parsed with a token limit and without locations, kept only once they validated. A failing validation is run again on a
 * located parse, so its errors still point into the text, and every error is a fresh object:
 * graphql-js throws one shared "Validation aborted." error, which yoga would otherwise decorate
 * (`extensions.http`) for every later reader, WebSocket ones included.
 */
export function useHttpDocumentCache(options: HttpDocumentCacheOptions = {}): Plugin {
  const {
    maxTokens,
    maxEntries,
    maxChars = 512 * 1024, // 512 Ki characters
  } = options;
  const texts = new WeakMap<DocumentNode, string>();
  const documents = createDocumentCache({ maxEntries, maxChars, maxTokens });
  const valid = new WeakSet<DocumentNode>();
  return {
    onParse({ params, setParsedDocument, setParseFn }) {
      const text = typeof params.source === 'string' ? params.source : params.source.body;
      const cached = documents.get(text);
      if (cached) return void setParsedDocument(cached);
      setParseFn(() => documents.parse(text));
      return ({ result }) => {
        if (result && !(result instanceof Error)) texts.set(result, text);
      };
    },
    onValidate({ params, setResult, setValidationFn }) {
      if (valid.has(params.documentAST)) return void setResult([]);
      setValidationFn((schema, document, rules, typeInfo, validationOptions) => {
        const tooMany = tooManySelections(document);
        if (tooMany) return [tooMany];
        const errors = validate(schema, document, rules, typeInfo, validationOptions);
        const text = texts.get(document);
        if (errors.length === 0) {
          valid.add(document);
          if (text !== undefined) documents.keep(text, document);
          return errors;
        }
        const located = text === undefined ? errors : validate(schema, documents.parseLocated(text), rules, undefined, validationOptions);
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
