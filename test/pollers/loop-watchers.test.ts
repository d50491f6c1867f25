import { describe, expect, it } from 'vitest';
import { createLoopWatchers, withEta } from '../../src/pollers/loop-watchers.ts';
import { normaliseTask, type TaskSnapshot } from '../../src/upstream/task-snapshot.ts';
import { createManualClock } from '../helpers/clock.ts';

const processing = (progress: number) =>
  normaliseTask({ task_id: 'task-1', status: 'processing', progress, created_at: 1767225600, model: 'm' });

describe("a loop's last state", () => {
  it('copies every field of the snapshot, whatever fields it gains, and adds the estimate', () => {
    // A field the snapshot does not have today stands for one it gains tomorrow.
    const snapshot = { ...processing(10), gainedLater: { kept: true } } as TaskSnapshot;
    const at = new Date('2026-01-01T00:10:00Z');
    expect(withEta(snapshot, at)).toEqual({ ...snapshot, estimatedCompletionAt: at });
    expect(Object.keys(withEta(snapshot, null))).toEqual([...Object.keys(snapshot), 'estimatedCompletionAt']);
  });

  it('is what the loop accepted, every field of it, with its estimate', () => {
    const clock = createManualClock();
    const watchers = createLoopWatchers({ now: clock.now });
    watchers.accept({ ...processing(10), gainedLater: 1 } as TaskSnapshot);
    clock.advance(1_000);
    const second = { ...processing(20), gainedLater: 2 } as TaskSnapshot;
    expect(watchers.accept(second)).toBe(true);
    expect(watchers.latest()).toMatchObject({ ...second, estimatedCompletionAt: expect.any(Date) });
    // A step back is no news: the last state stays.
    expect(watchers.accept(processing(5))).toBe(false);
    expect(watchers.latest()).toMatchObject({ progress: 20, gainedLater: 2 });
  });
});
