import { badUserInput } from '../graphql/errors.ts';
import { MAX_TASKS_PER_SUBSCRIPTION } from '../graphql/limits.ts';
import type { TaskEvent } from '../pollers/task-sink.ts';
import { mergeTaskWatches, type TaskWatchEvent } from '../pollers/task-watches.ts';
import { builder } from '../schema/builder.ts';
import { TaskRef } from '../schema/task.ts';
import { type TaskUpdate, TaskUpdateRef } from '../schema/task-update.ts';
import { TaskNotFoundError } from '../upstream/errors.ts';
import { validateTaskId } from '../upstream/task-id.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

builder.subscriptionType({
  fields: (t) => ({
    taskUpdated: t.field({
      type: TaskRef,
      description:
        'The task now, then every change (status, progress, result, error) until exactly one terminal state, after which the subscription completes. The gateway polls the upstream once per task and key, however many watch.',
      args: { id: t.arg.id({ required: true }) },
      subscribe: (_root, { id }, context) => context.watchTask(validateTaskId(String(id))),
      // An error event (404, 401, timeout) becomes this event's GraphQL error; the stream then ends.
      resolve: (event: TaskEvent): TaskSnapshot => {
        if (event instanceof Error) throw event;
        return event;
      },
    }),
    tasksUpdated: t.field({
      type: TaskUpdateRef,
      description: `Several tasks at once (at most ${MAX_TASKS_PER_SUBSCRIPTION} distinct ids): each task's current state first, then one event per change of any of them, each naming its task by \`id\`. A task that is missing or not the caller's is reported once as \`TaskNotFoundError\`; each task ends with exactly one terminal state (or one \`TaskNotFoundError\` / \`TaskWatchError\`); the subscription completes when every task has ended. Shares the poll loops of \`taskUpdated\`: a task costs the same upstream reads however it is watched.`,
      args: { ids: t.arg.idList({ required: true }) },
      subscribe: (_root, { ids }, context) => {
        const distinct = [...new Set(ids.map(String))];
        if (distinct.length > MAX_TASKS_PER_SUBSCRIPTION) {
          throw badUserInput(`tasksUpdated accepts at most ${MAX_TASKS_PER_SUBSCRIPTION} distinct ids; got ${distinct.length}.`);
        }
        // Every id is checked before the first watch starts, so a bad one costs nothing upstream.
        const valid = distinct.map((id) => validateTaskId(id));
        context.credential();
        return mapUpdates(mergeTaskWatches(valid.map((id) => [id, context.watchTask(id)] as const)));
      },
      resolve: (update: TaskUpdate) => update,
    }),
  }),
});

/** Turns each merged event into its `TaskUpdate`; an error ends that task's watch only. */
function toUpdate({ taskId, event }: TaskWatchEvent): TaskUpdate {
  if (!(event instanceof Error)) return event;
  if (event instanceof TaskNotFoundError) return { kind: 'TaskNotFoundError', id: taskId, message: event.message };
  return { kind: 'TaskWatchError', id: taskId, code: event.clientCode, message: event.message };
}

/** A lean map (not an async generator: its `return()` would wait for the pending `next()`). */
function mapUpdates(source: AsyncIterableIterator<TaskWatchEvent>): AsyncIterableIterator<TaskUpdate> {
  const iterator: AsyncIterableIterator<TaskUpdate> = {
    async next() {
      const step = await source.next();
      return step.done ? { value: undefined, done: true } : { value: toUpdate(step.value), done: false };
    },
    return: async () => {
      await source.return?.();
      return { value: undefined, done: true };
    },
    throw: async () => {
      await source.return?.();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
