import { badUserInput } from '../graphql/errors.ts';
import { builder } from '../schema/builder.ts';
import { TaskRef } from '../schema/task.ts';
import { validateTaskId } from '../upstream/task-id.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

/** Most ids one `tasks` query may name: each distinct id costs one upstream GET. */
export const MAX_TASKS_PER_QUERY = 100;

builder.queryType({
  fields: (t) => ({
    task: t.field({
      type: TaskRef,
      nullable: true,
      description: "A task by id; null when it does not exist or is not the caller's.",
      args: { id: t.arg.id({ required: true }) },
      resolve: (_root, { id }, context) => context.taskLoader.load(validateTaskId(String(id))),
    }),
    tasks: t.field({
      type: [TaskRef],
      nullable: { list: false, items: true },
      description: `Several tasks in the order asked (at most ${MAX_TASKS_PER_QUERY}); one upstream GET per distinct id. An entry is null when that task is not found, or carries its own error.`,
      args: { ids: t.arg.idList({ required: true }) },
      resolve: (_root, { ids }, context) => {
        if (ids.length > MAX_TASKS_PER_QUERY) {
          throw badUserInput(`tasks accepts at most ${MAX_TASKS_PER_QUERY} ids; got ${ids.length}.`);
        }
        // Every id is checked before the first request, so a bad one costs nothing upstream.
        const valid = ids.map((id) => validateTaskId(String(id)));
        // graphql-js turns an Error item into that item's own error, so one failure nulls one entry.
        return context.taskLoader.loadMany(valid) as Promise<Array<TaskSnapshot | null>>;
      },
    }),
  }),
});
