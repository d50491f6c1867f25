import { describe, expect, it } from 'vitest';
import { pollTickMs, realScheduler, tickScheduler } from '../../src/lib/scheduler.ts';

describe("the poll loops' timers on ticks", () => {
  it('fire two timers due within one tick together, at its end, never before either was due', async () => {
    const tick = 200;
    const scheduler = tickScheduler(tick);
    const start = performance.now();
    // A tick end at least 60 ms away, a timer due just after the tick before it, and one due just before it.
    const end = Math.ceil((start + 60) / tick) * tick;
    const early = Math.max(1, end - tick - start + 1);
    const late = end - start - 1;
    const fired = await Promise.all(
      [early, late].map((delayMs) => new Promise<number>((resolve) => scheduler.setTimeout(() => resolve(performance.now()), delayMs))),
    );
    // Node may run a timer up to a millisecond before its time (its clock is read once per turn of the loop).
    expect(fired[0]).toBeGreaterThanOrEqual(end - 2);
    expect(fired[1]).toBeGreaterThanOrEqual(end - 2);
    // Node's own timer would have run the early one about `late - early` ms (at least 58) before the other.
    expect(Math.abs(fired[1]! - fired[0]!)).toBeLessThan(late - early - 20);
  });

  it('clears a timer before its tick', async () => {
    const scheduler = tickScheduler(20);
    let ran = false;
    const handle = scheduler.setTimeout(() => {
      ran = true;
    }, 5);
    scheduler.clearTimeout(handle);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(ran).toBe(false);
  });

  it('never rounds a delay Node takes (up to 2^31 - 1 ms) past what it takes, which Node would run at once', async () => {
    const scheduler = tickScheduler(20);
    let ran = false;
    const handle = scheduler.setTimeout(
      () => {
        ran = true;
      },
      2 ** 31 - 1 - 5,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    scheduler.clearTimeout(handle);
    expect(ran).toBe(false);
  });

  it('are 1 % of the poll interval, at most 20 ms; below 2 ms, Node timers as they are', () => {
    expect(pollTickMs(2_000)).toBe(20);
    expect(pollTickMs(5_000)).toBe(20);
    expect(pollTickMs(250)).toBe(2);
    expect(pollTickMs(100)).toBe(1);
    expect(tickScheduler(pollTickMs(100))).toBe(realScheduler);
    expect(tickScheduler(0)).toBe(realScheduler);
  });
});
