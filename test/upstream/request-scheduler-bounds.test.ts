import { describe, expect, it } from 'vitest';
import { createLocalBudget, KEYS_KEPT } from '../../src/upstream/key-budget.ts';
import { createRequestScheduler } from '../../src/upstream/request-scheduler.ts';
import { createManualClock, createManualScheduler } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';

/** Lets every promise reaction queued by now run. */
const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** A scheduler whose requests are sends that finish only when the test says; `sent` lists them in order. */
function scheduling(bounds: { maxInFlightPerKey?: number; maxInFlight: number }) {
  const clock = createManualClock();
  const timers = createManualScheduler(clock);
  const requests = createRequestScheduler({
    ...bounds,
    budget: createLocalBudget({ now: clock.now, initialRatePerSec: 1_000, maxRatePerSec: 1_000 }),
    now: clock.now,
    timers,
  });
  track(async () => requests.dispose());
  const sent: string[] = [];
  const running: Array<() => void> = [];
  const run = (keyHash: string, label: string) =>
    requests.run(
      keyHash,
      () =>
        new Promise((resolve) => {
          sent.push(label);
          running.push(() => resolve(label));
        }),
      { priority: 'poll' },
    );
  /** Ends the oldest request in flight. */
  const finishOldest = async () => {
    running.shift()!();
    await flush();
  };
  /** Moves the clock by `ms`, then ends every request in flight: each answered `ms` after it was sent, or later. */
  const answerAfter = async (ms: number) => {
    timers.advance(ms);
    await flush();
    for (const finish of running.splice(0)) finish();
    await flush();
  };
  return { requests, run, sent, running, finishOldest, answerAfter };
}

describe('the request scheduler under its bounds', () => {
  it('gives a place freed under the total bound to a key that waited for room, not back to the key that held it', async () => {
    const { run, sent, finishOldest } = scheduling({ maxInFlightPerKey: 2, maxInFlight: 2 });
    // Key A is accepted first (an unknown key sends one request at a time).
    const warm = run('A', 'warm');
    await finishOldest();
    await warm;
    // Left waiting at the end: the scheduler's disposal refuses them.
    for (let i = 0; i < 6; i++) run('A', `A${i}`).catch(() => undefined);
    run('B', 'B0').catch(() => undefined);
    await flush();
    expect(sent).toEqual(['warm', 'A0', 'A1']);
    // B has waited for room since A filled the total: the next place A frees is B's.
    await finishOldest();
    expect(sent.at(-1)).toBe('B0');
  });

  it('shares a full pool in turns between the keys waiting for room, one request each', async () => {
    const { run, sent, running, finishOldest } = scheduling({ maxInFlight: 3 });
    for (const key of ['A', 'B', 'C']) {
      const warm = run(key, `${key}-warm`);
      await finishOldest();
      await warm;
    }
    sent.length = 0;
    for (const key of ['A', 'B', 'C']) for (let i = 0; i < 6; i++) run(key, `${key}${i}`).catch(() => undefined);
    await flush();
    expect(sent).toEqual(['A0', 'A1', 'A2']);
    for (let i = 0; i < 6; i++) await finishOldest();
    // B and C waited for room while A held the pool: the places A frees go to them in turn, and A
    // joins the turns behind them; after six answers each key has one request in flight.
    expect(sent.slice(3)).toEqual(['B0', 'C0', 'B1', 'A3', 'C1', 'B2']);
    expect(running.length).toBe(3);
    expect(
      sent
        .slice(-3)
        .map((label) => label[0])
        .sort(),
    ).toEqual(['A', 'B', 'C']);
  });

  it('lets a key have as many requests in flight as its pace × latency needs, not a fixed 8', async () => {
    const { run, running, finishOldest, answerAfter } = scheduling({ maxInFlight: 512 });
    const warm = run('K', 'warm');
    await finishOldest();
    await warm;
    // 1,000 requests/s answered in 100 ms: 100 in flight, 208 with the headroom and the minimum.
    let most = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 150; i++) run('K', `K${round}-${i}`).catch(() => undefined);
      await flush();
      most = Math.max(most, running.length);
      await answerAfter(100);
    }
    expect(most).toBeGreaterThan(100);
    expect(most).toBeLessThanOrEqual(208);
  });

  it('frees the place of a request whose send throws instead of rejecting', async () => {
    const { requests } = scheduling({ maxInFlightPerKey: 8, maxInFlight: 128 });
    await expect(
      requests.run('Z', () => {
        throw new Error('thrown while sending');
      }),
    ).rejects.toThrow('thrown while sending');
    expect(requests.stats().inFlight).toBe(0);
  });

  it('forgets idle keys past KEYS_KEPT known ones, however many keys clients bring', async () => {
    const { requests } = scheduling({ maxInFlightPerKey: 8, maxInFlight: 128 });
    for (let i = 0; i < KEYS_KEPT + 2_000; i++) await requests.run(`key-${i}`, async () => 'answered');
    expect(requests.stats().keys).toBeLessThanOrEqual(KEYS_KEPT + 1);
  });
});
