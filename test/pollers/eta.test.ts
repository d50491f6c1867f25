import { describe, expect, it } from 'vitest';
import { createEtaEstimator } from '../../src/pollers/eta.ts';
import { normaliseTask } from '../../src/upstream/task-snapshot.ts';
import { createManualClock } from '../helpers/clock.ts';

const task = (status: string, progress: number | string) =>
  normaliseTask({ task_id: 'task-eta', status, progress, model: 'm', action: 'generate', created_at: 1_720_000_000 });

describe('the completion estimate', () => {
  it('is null for a queued task and for the first processing reading', () => {
    const clock = createManualClock();
    const eta = createEtaEstimator({ now: clock.now });
    expect(eta.observe(task('queued', 0))).toBeNull();
    clock.advance(3_000);
    expect(eta.observe(task('processing', 10))).toBeNull();
  });

  it('extrapolates the observed rate once progress rose between two readings', () => {
    const clock = createManualClock();
    const eta = createEtaEstimator({ now: clock.now });
    eta.observe(task('processing', 10));
    clock.advance(2_000);
    // 20 points in 2 s: 10 points per second, 70 points left: 7 s from now.
    expect(eta.observe(task('processing', 30))?.getTime()).toBe(clock.now() + 7_000);
  });

  it('smooths the rate exponentially (the newest rate weighs half by default)', () => {
    const clock = createManualClock();
    const eta = createEtaEstimator({ now: clock.now });
    eta.observe(task('processing', 0));
    clock.advance(1_000);
    eta.observe(task('processing', 20)); // 20 points per second
    clock.advance(4_000);
    // 20 points in 4 s: 5 points per second; smoothed 12.5 per second; 60 points left: 4.8 s.
    expect(eta.observe(task('processing', 40))?.getTime()).toBe(clock.now() + 4_800);
  });

  it('keeps the estimate when a change is not a progress change, and drops it once the task leaves processing', () => {
    const clock = createManualClock();
    const eta = createEtaEstimator({ now: clock.now });
    eta.observe(task('processing', 50));
    clock.advance(1_000);
    const estimate = eta.observe(task('processing', 60))!.getTime();
    clock.advance(500);
    expect(eta.observe(task('processing', 60))?.getTime()).toBe(estimate);
    expect(eta.observe(task('completed', 100))).toBeNull();
  });

  it('does not count the queue wait as progress time', () => {
    const clock = createManualClock();
    const eta = createEtaEstimator({ now: clock.now });
    eta.observe(task('queued', 0));
    clock.advance(60_000);
    expect(eta.observe(task('processing', 50))).toBeNull();
  });
});
