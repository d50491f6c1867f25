import { describe, expect, it } from 'vitest';
import { createTaskSink, type TaskSink } from '../../src/pollers/task-sink.ts';
import { mergeTaskWatches } from '../../src/pollers/task-watches.ts';
import { normaliseTask } from '../../src/upstream/task-snapshot.ts';

const state = (id: string, status: string, progress: number) =>
  normaliseTask({ task_id: id, status, progress, model: 'm', action: 'generate', created_at: 1_720_000_000 });

describe('merging the watches of several tasks', () => {
  it('holds at most the newest state per task while the consumer is away, and always the terminal one', async () => {
    const left: TaskSink[] = [];
    const sinks = ['task-a', 'task-b'].map((id) => [id, createTaskSink((sink) => left.push(sink))] as const);
    const merged = mergeTaskWatches(sinks);
    for (const [id, sink] of sinks)
      for (let progress = 1; progress <= 10_000; progress++) sink.push(state(id, 'processing', progress % 100));
    const first = [await merged.next(), await merged.next()];
    expect(first.map((step) => step.value && (step.value.event as any).progress).sort()).toEqual([0, 0]);
    for (const [id, sink] of sinks) {
      sink.push(state(id, 'processing', 50));
      sink.push(state(id, 'completed', 100), true);
    }
    const rest: string[] = [];
    for await (const { taskId, event } of merged) rest.push(`${taskId}:${(event as any).status}`);
    // At most one state waits in the merge and one in the sink per task; the terminal one is never lost.
    for (const id of ['task-a', 'task-b']) {
      const mine = rest.filter((entry) => entry.startsWith(id));
      expect(mine.length).toBeLessThanOrEqual(2);
      expect(mine.at(-1)).toBe(`${id}:COMPLETED`);
    }
    expect(left).toEqual([]);
  });

  it('completes when every watch has ended, and at once with none', async () => {
    expect(await mergeTaskWatches([]).next()).toEqual({ value: undefined, done: true });
  });

  it('leaves every open watch when the consumer leaves, even while it waits for an event', async () => {
    const left: TaskSink[] = [];
    const sinks = ['task-a', 'task-b'].map((id) => [id, createTaskSink((sink) => left.push(sink))] as const);
    const merged = mergeTaskWatches(sinks);
    sinks[0]![1].push(state('task-a', 'completed', 100), true);
    expect((await merged.next()).value?.taskId).toBe('task-a');
    const pending = merged.next();
    await merged.return!();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(left).toEqual([sinks[1]![1]]);
  });
});
