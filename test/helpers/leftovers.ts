/**
 * Every fixture the helpers start (a server, a socket, a process, a Redis
 * client) is registered here, so that a failed assertion never leaks it: the
 * hooks in `leftovers-hooks.ts` (a vitest setup file) dispose what a test
 * started after that test, and what `beforeAll` started after its file, in
 * reverse order of creation. Disposing a fixture by hand first is fine: each
 * disposer runs once. Outside vitest (the bench) no hook runs; stop fixtures
 * by hand as usual.
 */
export type Dispose = () => Promise<void>;

const fileLeftovers: Dispose[] = [];
let testLeftovers: Dispose[] | null = null;

/** Registers `dispose` with the running test (or the file, outside a test); returns it, made to run once. */
export function track(dispose: () => unknown): Dispose {
  const scope = testLeftovers ?? fileLeftovers;
  let disposed: Promise<void> | null = null;
  const once: Dispose = () => {
    if (!disposed) {
      const index = scope.indexOf(once);
      if (index >= 0) scope.splice(index, 1);
      try {
        disposed = Promise.resolve(dispose()).then(() => undefined);
      } catch (error) {
        disposed = Promise.reject(error);
      }
    }
    return disposed;
  };
  scope.push(once);
  return once;
}

/** From now until `disposeLeftovers('test')`, fixtures belong to the running test. */
export function beginTest(): void {
  testLeftovers = [];
}

/** Disposes what the test (or the file) left behind, newest first; throws the first failure after trying all. */
export async function disposeLeftovers(scope: 'test' | 'file'): Promise<void> {
  const leftovers = scope === 'test' ? (testLeftovers ?? []) : fileLeftovers;
  if (scope === 'test') testLeftovers = null;
  const failures: unknown[] = [];
  while (leftovers.length > 0) {
    try {
      await leftovers.at(-1)!();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length > 0) throw failures[0];
}
