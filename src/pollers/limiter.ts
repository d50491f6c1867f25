/** Runs at most `max` tasks at once; the rest wait their turn in order. */
export function createLimiter(max: number) {
  let running = 0;
  const queue: Array<() => void> = [];
  return {
    active: () => running,
    async run<T>(task: () => Promise<T>): Promise<T> {
      if (running >= max) await new Promise<void>((resolve) => queue.push(resolve));
      running += 1;
      try {
        return await task();
      } finally {
        running -= 1;
        queue.shift()?.();
      }
    },
  };
}
