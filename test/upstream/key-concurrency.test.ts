import { describe, expect, it } from 'vitest';
import { createKeyConcurrency, INITIAL_LIMIT, LIMIT_HEADROOM, MIN_LIMIT } from '../../src/upstream/key-concurrency.ts';

/** Feeds one window of `count` answers of `latencyMs` each, then closes it at a pace of `rate`. */
function window(limit: ReturnType<typeof createKeyConcurrency>, latencyMs: number, rate: number, count = 20): number {
  for (let i = 0; i < count; i++) limit.sample(latencyMs);
  return limit.update(rate);
}

describe('the in-flight limit of a key', () => {
  it('starts at the fixed bound, then follows pace × latency with headroom (Little law)', () => {
    const limit = createKeyConcurrency();
    expect(limit.update(500)).toBe(INITIAL_LIMIT);
    // 500/s answered in 100 ms: 50 in flight, twice that with the headroom.
    for (let i = 0; i < 10; i++) window(limit, 100, 500);
    expect(limit.limit).toBe(500 * 0.1 * LIMIT_HEADROOM + MIN_LIMIT);
    // A faster pace needs more: 2,500/s at 100 ms.
    for (let i = 0; i < 10; i++) window(limit, 100, 2_500);
    expect(limit.limit).toBe(2_500 * 0.1 * LIMIT_HEADROOM + MIN_LIMIT);
  });

  it('lowers the limit when the latency rises under load, and restores it when the latency is back', () => {
    const limit = createKeyConcurrency();
    for (let i = 0; i < 20; i++) window(limit, 100, 1_000);
    const steady = limit.limit;
    expect(steady).toBe(1_000 * 0.1 * LIMIT_HEADROOM + MIN_LIMIT);
    // The upstream slows to 400 ms: Little's law alone would allow 4x more; the gradient lowers it.
    const under: number[] = [];
    for (let i = 0; i < 10; i++) under.push(window(limit, 400, 1_000));
    expect(under.at(-1)).toBeLessThan(steady / 2);
    for (let i = 1; i < under.length; i++) expect(under[i]).toBeLessThanOrEqual(under[i - 1]!);
    for (let i = 0; i < 20; i++) window(limit, 100, 1_000);
    // Back within one of it: the average latency returns to 100 ms from above, never exactly.
    expect(limit.limit - steady).toBeGreaterThanOrEqual(0);
    expect(limit.limit - steady).toBeLessThanOrEqual(1);
  });

  it('never goes below its minimum, however slow the upstream becomes', () => {
    const limit = createKeyConcurrency();
    for (let i = 0; i < 5; i++) window(limit, 10, 1_000);
    const limits = Array.from({ length: 40 }, () => window(limit, 5_000, 1_000));
    expect(Math.min(...limits)).toBe(MIN_LIMIT);
  });

  it('accepts a lasting change of latency after a while: the latency without load follows it slowly', () => {
    const limit = createKeyConcurrency();
    for (let i = 0; i < 5; i++) window(limit, 10, 100);
    for (let i = 0; i < 400; i++) window(limit, 200, 100);
    expect(limit.limit).toBe(100 * 0.2 * LIMIT_HEADROOM + MIN_LIMIT);
  });
});
