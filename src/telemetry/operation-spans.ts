import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { type DocumentNode, type ExecutionArgs, type ExecutionResult, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { OperationTrace } from '../graphql/context.ts';

/**
 * A span per GraphQL operation on every transport, named and attributed after
 * the OpenTelemetry GraphQL conventions (`query Task`, `graphql.operation.type`,
 * `graphql.operation.name`). Never the document's variables, never a header.
 * An incoming W3C `traceparent` continues the client's trace. Resolvers run in
 * the span's context, and the services they call enter it again after their
 * awaits (`OperationTrace`), so the upstream requests they make are its children.
 * A subscription's span covers its set-up (its loop's reads are polls) and ends when
 * its stream is open: changes come later, from the shared poll loop.
 */
export interface OperationTracing {
  /** For yoga (HTTP, SSE, multipart): the trace continues from the request's headers. */
  readonly plugin: Plugin;
  /** For the WebSocket executor: runs `execute` in the operation's span. */
  execute<T>(args: ExecutionArgs, execute: (args: ExecutionArgs) => Promise<T>): Promise<T>;
  /**
   * Remembers what an operation's trace continues from: the subscribe message's `extensions`
   * (`{ traceparent }`), else the upgrade request's headers. Keyed by the operation's context value.
   */
  continueFrom(contextValue: object, carrier: Readonly<Record<string, unknown>>): void;
}

const headersGetter: TextMapGetter<Headers> = {
  get: (carrier, key) => carrier.get(key) ?? undefined,
  keys: (carrier) => [...carrier.keys()],
};

const recordGetter: TextMapGetter<Readonly<Record<string, unknown>>> = {
  get: (carrier, key) => {
    const value = carrier[key];
    return typeof value === 'string' ? value : undefined;
  },
  keys: (carrier) => Object.keys(carrier),
};

export function createOperationTracing(tracer: Tracer): OperationTracing {
  // Dropped with the context value: a WebSocket keeps one per live operation.
  const parents = new WeakMap<object, Context>();

  function start(parent: Context, document: DocumentNode, operationName: string | null | undefined): Span {
    const operation = getOperationAST(document, operationName);
    const type = operation?.operation ?? 'operation';
    const name = operation?.name?.value;
    return tracer.startSpan(
      name ? `${type} ${name}` : type,
      {
        kind: SpanKind.SERVER,
        attributes: name ? { 'graphql.operation.type': type, 'graphql.operation.name': name } : { 'graphql.operation.type': type },
      },
      parent,
    );
  }

  function traced<T>(parent: Context, args: ExecutionArgs, execute: (args: ExecutionArgs) => Promise<T>): Promise<T> {
    const span = start(parent, args.document, args.operationName);
    const operation = trace.setSpan(parent, span);
    // The resolvers' services enter it at each call, across awaits (src/graphql/context.ts).
    const slot = (args.contextValue as { operationTrace?: OperationTrace } | null | undefined)?.operationTrace;
    // An untraced context's slot is a shared frozen one: never written.
    if (slot && !Object.isFrozen(slot)) slot.context = operation;
    return context
      .with(operation, () => execute(args))
      .then(
        (result) => {
          end(span, result);
          return result;
        },
        (error: unknown) => {
          span.setStatus({ code: SpanStatusCode.ERROR });
          span.setAttribute('error.type', error instanceof Error ? error.name : 'unknown');
          span.end();
          throw error;
        },
      );
  }

  const plugin: Plugin<{ request?: Request }> = {
    onExecute({ args, executeFn, setExecuteFn }) {
      const parent = parentOf(args.contextValue.request);
      setExecuteFn((execution) => traced(parent, execution, async (a) => executeFn(a)));
    },
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      const parent = parentOf(args.contextValue.request);
      setSubscribeFn((subscription) => traced(parent, subscription, async (a) => subscribeFn(a)));
    },
  };

  return {
    plugin: plugin as Plugin,
    execute: (args, execute) => traced(parents.get(args.contextValue as object) ?? ROOT_CONTEXT, args, execute),
    continueFrom(contextValue, carrier) {
      parents.set(contextValue, propagation.extract(ROOT_CONTEXT, carrier, recordGetter));
    },
  };
}

function parentOf(request: Request | undefined): Context {
  return request ? propagation.extract(ROOT_CONTEXT, request.headers, headersGetter) : ROOT_CONTEXT;
}

/** Ends the span with the result's outcome: the first error's code, never its message or path. */
function end(span: Span, result: unknown): void {
  const errors = (result as ExecutionResult | null)?.errors;
  if (errors && errors.length > 0) {
    const code = errors[0]?.extensions?.code;
    span.setAttribute('error.type', typeof code === 'string' ? code : 'GRAPHQL_ERROR');
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
