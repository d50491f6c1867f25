/** A clock that only moves when the test says so. */
export interface ManualClock {
  now: () => number;
  advance(ms: number): void;
}

export function createManualClock(start = Date.UTC(2026, 10, 28, 12, 0, 0)): ManualClock {
  let current = start;
  return {
    now: () => current,
    advance(ms) {
      current += ms;
    },
  };
}

/** Timers on a manual clock: they fire only when the test advances it. */
export interface ManualScheduler {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Delays (ms from when each was set) of the timers still pending, soonest first. */
  pending(): number[];
  /** Moves the clock to the soonest pending timer and fires it; false when none is pending. */
  runNext(): boolean;
  /** Moves the clock by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void;
}

export function createManualScheduler(clock: ManualClock): ManualScheduler {
  let nextId = 0;
  const timers = new Map<number, { at: number; delay: number; callback: () => void }>();
  const soonest = () => [...timers.entries()].sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
  return {
    setTimeout(callback, delayMs) {
      const id = ++nextId;
      timers.set(id, { at: clock.now() + delayMs, delay: delayMs, callback });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    pending: () => [...timers.values()].sort((a, b) => a.at - b.at).map((timer) => timer.delay),
    runNext() {
      const entry = soonest();
      if (!entry) return false;
      const [id, timer] = entry;
      timers.delete(id);
      clock.advance(Math.max(0, timer.at - clock.now()));
      timer.callback();
      return true;
    },
    advance(ms) {
      const target = clock.now() + ms;
      for (let entry = soonest(); entry && entry[1].at <= target; entry = soonest()) {
        timers.delete(entry[0]);
        clock.advance(Math.max(0, entry[1].at - clock.now()));
        entry[1].callback();
      }
      clock.advance(Math.max(0, target - clock.now()));
    },
  };
}

/** Resolves once `check` stops throwing (a liveness bound, not a timing assertion). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** `promise`, or a rejection naming the bound if it has not settled within `timeoutMs` (a liveness bound, not a timing assertion). */
export async function settlesWithin<T>(promise: Promise<T>, timeoutMs = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${timeoutMs} ms (liveness bound)`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}
