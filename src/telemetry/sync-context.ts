import { type Context, type ContextManager, ROOT_CONTEXT } from '@opentelemetry/api';

/**
 * The gateway's OpenTelemetry context manager: a context is active for the
 * synchronous extent of `with`, and nowhere else. It never follows an `await`
 * or a timer on its own, so nothing is paid per promise.
 *
 * Node 20's `AsyncLocalStorage`, which the SDK's default manager is built on,
 * runs a hook for every promise the process makes once any context is entered:
 * measured at about a sixth of a poll's CPU (`npm run bench -- tracing polls`),
 * paid by every poll, traced or not. The gateway carries an operation's context
 * itself instead, across the few places its work crosses an `await` for the
 * operation: the GraphQL context's services (`src/graphql/context.ts`), a poll
 * loop's hints (the operation that started it), continuations bound to the
 * caller's context (`context.bind`, which this manager honours), and an
 * upstream answer read in its request's context (`upstream-spans.ts`).
 */
export class SyncContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;

  active(): Context {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const previous = this.current;
    this.current = context;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }

  bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const manager = this;
    return function bound(this: unknown, ...args: unknown[]) {
      return manager.with(context, () => (target as (...a: unknown[]) => unknown).apply(this, args));
    } as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.current = ROOT_CONTEXT;
    return this;
  }
}
