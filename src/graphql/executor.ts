import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  GraphQLError,
  type GraphQLSchema,
  getOperationAST,
  getVariableValues,
  Kind,
  specifiedRules,
  validate,
} from 'graphql';
import { createDocumentCache, type DocumentCacheOptions } from './document-cache.ts';
import { gatewayError, maskError } from './errors.ts';
import { costRules, tooManySelections } from './limits.ts';

const emptyDocument: DocumentNode = { kind: Kind.DOCUMENT, definitions: [] };

/** A parsed and validated operation, shared by every request that sends the same text. */
export interface PreparedOperation {
  document: DocumentNode;
  errors: readonly GraphQLError[];
}

export interface ExecutorOptions {
  schema: GraphQLSchema;
  /** Most distinct operation texts kept parsed. Default: the document cache's. */
  maxOperations?: DocumentCacheOptions['maxEntries'];
  /**
   * Most characters of operation text kept parsed, over all of them (the cost of one:
   * `DocumentCacheOptions.maxChars`). Default 1 048 576 (1 Mi).
   */
  maxOperationChars?: number;
  /** Longest operation text accepted, in characters. Default 100 000. */
  maxLength?: number;
  /** Most tokens in one operation. Default: the document cache's. */
  maxTokens?: DocumentCacheOptions['maxTokens'];
}

/**
 * How the WebSocket path runs operations, one per gateway (two gateways in one
 * process share nothing). Each distinct operation text is parsed and validated
 * once; subscription events are executed once per (event, operation,
 * variables) and that result is shared by every subscriber that asked the same:
 * fan-out to thousands of watchers of one task costs one execution per change.
 */
export interface Executor {
  /** The parsed document of `query` and its validation errors; only valid operations are cached. */
  prepare(query: string): PreparedOperation;
  /** Executes a query or mutation, or subscribes; every error is masked by `maskError`. */
  execute(args: ExecutionArgs): Promise<ExecutionResult | AsyncIterableIterator<ExecutionResult>>;
}

export function createExecutor(options: ExecutorOptions): Executor {
  const {
    schema,
    maxOperations,
    maxOperationChars = 1 << 20, // 1 Mi characters
    maxLength = 100_000, // characters
    maxTokens,
  } = options;
  const documents = createDocumentCache({ maxEntries: maxOperations, maxChars: maxOperationChars, maxTokens });
  // Every request that sends a known text gets the same prepared operation (and so shares executions).
  const prepared = new WeakMap<DocumentNode, PreparedOperation>();
  const documentIds = new WeakMap<DocumentNode, number>();
  let nextDocumentId = 0;
  // Shared executions live for one turn of the event loop: every watcher waiting when a change
  // is pushed takes it in the same turn; a slow one that reads later executes its own.
  const executions = new WeakMap<object, Map<string, PromiseOrValue<ExecutionResult>>>();

  function prepare(query: string): PreparedOperation {
    const cached = documents.get(query);
    if (cached) return prepared.get(cached)!;
    if (query.length > maxLength) {
      return { document: emptyDocument, errors: [parseFailed(`The operation is longer than ${maxLength} characters.`)] };
    }
    let document: DocumentNode;
    try {
      document = documents.parse(query);
    } catch (error) {
      return { document: emptyDocument, errors: [error instanceof GraphQLError ? parseFailed(error.message) : parseFailed()] };
    }
    const tooMany = tooManySelections(document);
    const errors = tooMany ? [tooMany] : validate(schema, document, [...specifiedRules, ...costRules]);
    if (errors.length > 0) return { document, errors };
    const operation = { document, errors };
    prepared.set(document, operation);
    documents.keep(query, document);
    return operation;
  }

  function sharingKey(args: ExecutionArgs): string | null {
    const operation = getOperationAST(args.document, args.operationName);
    if (!operation) return null;
    // Only the declared variables, as coerced: undeclared junk neither splits nor bloats the key.
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], args.variableValues ?? {}, { maxErrors: 1 });
    if (coerced.errors) return null;
    let documentId = documentIds.get(args.document);
    if (documentId === undefined) {
      documentId = ++nextDocumentId;
      documentIds.set(args.document, documentId);
    }
    return `${documentId}\0${args.operationName ?? ''}\0${JSON.stringify(coerced.coerced)}`;
  }

  /** The result of `event` for `key`: executed by the first watcher to ask, the same object for the others. */
  function sharedExecution(
    event: unknown,
    key: string | null,
    run: () => PromiseOrValue<ExecutionResult>,
  ): PromiseOrValue<ExecutionResult> {
    if (key === null || typeof event !== 'object' || event === null) return masked(run());
    let byKey = executions.get(event);
    if (!byKey) {
      byKey = new Map();
      executions.set(event, byKey);
      setImmediate(() => executions.delete(event));
    }
    let result = byKey.get(key);
    if (!result) {
      // Events resolve synchronously: most results are plain values, handed on without a promise hop per watcher.
      result = masked(run());
      if (result instanceof Promise)
        result.then(
          (value) => byKey.set(key, value),
          () => undefined,
        );
      byKey.set(key, result);
    }
    return result;
  }

  return {
    prepare,
    async execute(args) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'subscription') return maskResult(await execute(args));
      const source = await createSourceEventStream(args);
      if (!isAsyncIterable(source)) return maskResult(source);
      const key = sharingKey(args);
      return mapEvents(source[Symbol.asyncIterator](), (event) =>
        sharedExecution(event, key, () => execute({ ...args, rootValue: event })),
      );
    },
  };
}

function parseFailed(message = 'The operation could not be parsed.'): GraphQLError {
  return gatewayError('GRAPHQL_PARSE_FAILED', message);
}

type PromiseOrValue<T> = T | Promise<T>;

function masked(result: PromiseOrValue<ExecutionResult>): PromiseOrValue<ExecutionResult> {
  return result instanceof Promise ? result.then(maskResult) : maskResult(result);
}

/** Applies `maskError` to every error of a result: the one mapping to client-facing errors. */
export function maskResult(result: ExecutionResult): ExecutionResult {
  return result.errors ? { ...result, errors: result.errors.map((error) => maskError(error)) } : result;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** A lean async map over a source stream: `return()` reaches the source (the watcher leaves). */
function mapEvents<T, R>(source: AsyncIterator<T>, map: (value: T) => PromiseOrValue<R>): AsyncIterableIterator<R> {
  const iterator: AsyncIterableIterator<R> = {
    async next() {
      const step = await source.next();
      if (step.done) return { value: undefined, done: true };
      const value = map(step.value);
      return { value: value instanceof Promise ? await value : value, done: false };
    },
    async return() {
      await source.return?.();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      await source.return?.();
      throw error;
    },
    [Symbol.asyncIterator]: returnThis,
  };
  return iterator;
}

function returnThis<T>(this: T): T {
  return this;
}
