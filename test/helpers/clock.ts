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
