/** A listener of an abort: a function, or an object with `handleEvent` (as the DOM's EventTarget takes). */
export type AbortListener = (() => void) | { handleEvent(): void };

/**
 * What the upstream path needs of an abort signal: whether and why it fired, and listeners added
 * and removed around each request. An `AbortSignal` is one; so is a `StopSignal`.
 */
export interface Abortable {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: AbortListener, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: AbortListener): void;
}

/**
 * The signal a poll loop's reads listen to, fired once when the loop stops. Each read adds a
 * listener and removes it when answered, thousands of times a second over all loops: on an
 * `AbortSignal` (an EventTarget) that pair cost about 3 % of a poll's CPU
 * (`npm run bench -- performance polls`), on this a set's add and delete.
 */
export class StopSignal implements Abortable {
  aborted = false;
  reason: unknown = undefined;
  private readonly listeners = new Set<AbortListener>();

  addEventListener(_type: 'abort', listener: AbortListener): void {
    if (!this.aborted) this.listeners.add(listener);
  }

  removeEventListener(_type: 'abort', listener: AbortListener): void {
    this.listeners.delete(listener);
  }

  /** Fires once: every listener hears it, in the order added; later calls do nothing. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const listener of listeners) {
      if (typeof listener === 'function') listener();
      else listener.handleEvent();
    }
  }
}
