import { describe, expect, it } from 'vitest';
import { applyLesson, createLocalBudget, freshState, KEYS_KEPT, reserveSlots, resolveRules } from '../../src/upstream/key-budget.ts';
import { createKeyStanding } from '../../src/upstream/key-standing.ts';
import { createManualClock } from '../helpers/clock.ts';

describe('the budget of a key', () => {
  const rules = resolveRules();

  it('lets a key never refused burst 0.2 s of its pace, then paces it', () => {
    const state = freshState(rules);
    const slots = Array.from({ length: 14 }, () => reserveSlots(state, 1_000));
    // 50/s: 20 ms apart, 200 ms of tolerance: the first 11 at once.
    expect(slots.slice(0, 11)).toEqual(Array(11).fill(1_000));
    expect(slots.slice(11)).toEqual([1_020, 1_040, 1_060]);
  });

  it('learns 95 % of a quota, pauses until its reset, and then paces strictly', () => {
    const state = freshState(rules);
    applyLesson(state, { kind: 'quota', ratePerSec: 10, resumeAt: 5_000 }, 1_000, rules);
    expect(state.intervalMs).toBeCloseTo(1_000 / 9.5);
    expect([reserveSlots(state, 1_000), reserveSlots(state, 1_000)]).toEqual([5_000, 5_000 + 1_000 / 9.5]);
    // Growing while saturated never passes what the quota taught.
    for (let i = 0; i < 10; i++) applyLesson(state, { kind: 'faster' }, 2_000 + i * 1_000, rules);
    expect(state.intervalMs).toBeCloseTo(1_000 / 9.5);
  });

  it('halves the pace on a bare 429 at most once a second, and grows it back by 1/s a second', () => {
    const state = freshState(rules);
    for (let i = 0; i < 8; i++) applyLesson(state, { kind: 'slower', resumeAt: null }, 1_000, rules);
    expect(1_000 / state.intervalMs).toBeCloseTo(25);
    applyLesson(state, { kind: 'slower', resumeAt: null }, 2_000, rules);
    expect(1_000 / state.intervalMs).toBeCloseTo(12.5);
    applyLesson(state, { kind: 'faster' }, 3_000, rules);
    expect(1_000 / state.intervalMs).toBeCloseTo(13.5);
  });

  it('starts at and never passes a configured rate', () => {
    const configured = resolveRules({ initialRatePerSec: 5, maxRatePerSec: 5 });
    const state = freshState(configured);
    applyLesson(state, { kind: 'faster' }, 1_000, configured);
    expect(1_000 / state.intervalMs).toBeCloseTo(5);
  });

  it('doubles the pace each second a key that never met a 429 is saturated, up to its ceiling; the first 429 ends it', () => {
    const ceiling = resolveRules({ maxRatePerSec: 300 });
    const state = freshState(ceiling);
    applyLesson(state, { kind: 'faster' }, 1_000, ceiling);
    expect(1_000 / state.intervalMs).toBeCloseTo(100);
    applyLesson(state, { kind: 'faster' }, 2_000, ceiling);
    expect(1_000 / state.intervalMs).toBeCloseTo(200);
    // Growth follows the time saturated: half a second is a factor of the square root of 2.
    applyLesson(state, { kind: 'faster' }, 2_500, ceiling);
    expect(1_000 / state.intervalMs).toBeCloseTo(200 * Math.SQRT2);
    applyLesson(state, { kind: 'faster' }, 3_500, ceiling);
    expect(1_000 / state.intervalMs).toBeCloseTo(300);
    // A bare 429 halves it, and from then on it grows by 1/s each second.
    applyLesson(state, { kind: 'slower', resumeAt: null }, 4_000, ceiling);
    applyLesson(state, { kind: 'faster' }, 5_000, ceiling);
    expect(1_000 / state.intervalMs).toBeCloseTo(151);
  });

  it('remembers at most KEYS_KEPT keys, the least recently used forgotten first', () => {
    const clock = createManualClock();
    const budget = createLocalBudget({ now: clock.now });
    // Every key learns a 429 (its pace halves from 50/s): a forgotten key is back at 50/s.
    for (let i = 0; i < KEYS_KEPT; i++) budget.learn(`hash-${i}`, { kind: 'slower', resumeAt: null });
    expect(budget.size).toBe(KEYS_KEPT);
    // The oldest key is used again, after a place in the order is renewed (more than a second later).
    clock.advance(2_000);
    budget.reserveNow('hash-0');
    for (let i = 0; i < 10; i++) budget.reserveNow(`new-${i}`);
    expect(budget.size).toBe(KEYS_KEPT);
    const rates = ['hash-0', 'hash-1', 'hash-10', 'hash-11', `hash-${KEYS_KEPT - 1}`].map((key) => budget.rate(key));
    expect(rates).toEqual([25, 50, 50, 25, 25]);
  });
});

describe('the standing of keys', () => {
  it('refuses a rejected key for failFastMs, and remembers at most maxKeys keys', () => {
    const clock = createManualClock();
    const standing = createKeyStanding({ failFastMs: 30_000, maxKeys: 3, now: clock.now });
    standing.accept('a');
    standing.reject('a');
    expect([standing.accepted('a'), standing.refused('a')]).toEqual([false, true]);
    clock.advance(30_001);
    expect(standing.refused('a')).toBe(false);
    for (let i = 0; i < 10; i++) standing.accept(`key-${i}`);
    expect(['key-0', 'key-6', 'key-7', 'key-8', 'key-9'].map((key) => standing.accepted(key))).toEqual([false, false, true, true, true]);
  });
});
