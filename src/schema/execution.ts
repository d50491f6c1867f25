import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  GraphQLError,
  type GraphQLSchema,
  getOperationAST,
  Kind,
  parse,
  specifiedRules,
  validate,
} from 'graphql';
import { maskError } from './errors.ts';
import { costRules } from './limits.ts';

const emptyDocument: DocumentNode = { kind: Kind.DOCUMENT, definitions: [] };

/** A parsed and validated operation, shared by every request that sends the same text. */
export interface PreparedOperation {
  document: DocumentNode;
  errors: readonly GraphQLError[];
}

export interface OperationCacheOptions {
  /** Most distinct operation texts kept. Default 1 000. */
  maxEntries?: number;
  /** Longest operation text accepted, in characters. Default 100 000. */
  maxLength?: number;
}

/**
 * Parses and validates each distinct operation text once (LRU). Subscribers
 * that send the same text share one document, which also lets them share
 * each event's execution (see `subscribeShared`).
 */
export function createOperationCache(schema: GraphQLSchema, options: OperationCacheOptions = {}) {
  const { maxEntries = 1_000, maxLength = 100_000 } = options;
  const cache = new Map<string, PreparedOperation>();
  return (query: string): PreparedOperation => {
    const cached = cache.get(query);
    if (cached) {
      cache.delete(query);
      cache.set(query, cached);
      return cached;
    }
    let prepared: PreparedOperation;
    if (query.length > maxLength)
      return { document: emptyDocument, errors: [syntaxError(`The operation is longer than ${maxLength} characters.`)] };
    try {
      const document = parse(query, { maxTokens: 10_000 });
      prepared = { document, errors: validate(schema, document, [...specifiedRules, ...costRules]) };
    } catch (error) {
      prepared = {
        document: emptyDocument,
        errors: [error instanceof GraphQLError ? error : syntaxError('The operation could not be parsed.')],
      };
    }
    cache.set(query, prepared);
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value as string);
    return prepared;
  };
}

function syntaxError(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } });
}

/** Applies `maskError` to every error of a result: the one mapping to client-facing errors. */
export function maskResult(result: ExecutionResult): ExecutionResult {
  return result.errors ? { ...result, errors: result.errors.map((error) => maskError(error)) } : result;
}

let nextDocumentId = 0;
const documentIds = new WeakMap<DocumentNode, number>();

/**
 * Executes a query or mutation, or subscribes. Subscription events are
 * executed once per (event, document, operation, variables) and the result is
 * shared by every subscriber that asked the same thing: fan-out to thousands
 * of watchers of one task costs one execution per change, not thousands.
 */
export async function executeOperation(args: ExecutionArgs): Promise<ExecutionResult | AsyncIterableIterator<ExecutionResult>> {
  const operation = getOperationAST(args.document, args.operationName);
  if (operation?.operation !== 'subscription') return maskResult(await execute(args));
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return maskResult(source);
  let documentId = documentIds.get(args.document);
  if (documentId === undefined) {
    documentId = ++nextDocumentId;
    documentIds.set(args.document, documentId);
  }
  const key = `${documentId}\0${args.operationName ?? ''}\0${JSON.stringify(args.variableValues ?? {})}`;
  return mapEvents(source[Symbol.asyncIterator](), (event) => sharedExecution(event, key, () => execute({ ...args, rootValue: event })));
}

const executions = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();

function sharedExecution(event: unknown, key: string, run: () => ExecutionResult | Promise<ExecutionResult>): Promise<ExecutionResult> {
  if (typeof event !== 'object' || event === null) return Promise.resolve(run()).then(maskResult);
  let byKey = executions.get(event);
  if (!byKey) {
    byKey = new Map();
    executions.set(event, byKey);
  }
  let result = byKey.get(key);
  if (!result) {
    result = Promise.resolve(run()).then(maskResult);
    byKey.set(key, result);
  }
  return result;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** A lean async map over a source stream: `return()` reaches the source (the watcher leaves). */
function mapEvents<T, R>(source: AsyncIterator<T>, map: (value: T) => Promise<R>): AsyncIterableIterator<R> {
  const iterator: AsyncIterableIterator<R> = {
    async next() {
      const step = await source.next();
      return step.done ? { value: undefined, done: true } : { value: await map(step.value), done: false };
    },
    async return() {
      await source.return?.();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      await source.return?.();
      throw error;
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
