import type { TaskEvent } from '../pollers/task-sink.ts';
import { builder } from '../schema/builder.ts';
import { TaskRef } from '../schema/task.ts';
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
  }),
});
