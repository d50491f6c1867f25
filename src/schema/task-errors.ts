import type { TaskSnapshot } from '../upstream/task-snapshot.ts';
import { builder } from './builder.ts';
import { TaskRef } from './task.ts';

/** A task id the caller named that does not exist or is not theirs, as a result rather than an error. */
export interface TaskNotFound {
  kind: 'TaskNotFoundError';
  id: string;
  message: string;
}

/** A cancel that lost the race with the task starting. */
export interface TaskNotCancellable {
  kind: 'TaskNotCancellableError';
  message: string;
  task: TaskSnapshot;
}

export const TaskNotFoundErrorRef = builder.objectRef<TaskNotFound>('TaskNotFoundError').implement({
  description: "No such task, or not the caller's.",
  fields: (t) => ({ id: t.exposeID('id'), message: t.exposeString('message') }),
});

export const TaskNotCancellableErrorRef = builder.objectRef<TaskNotCancellable>('TaskNotCancellableError').implement({
  description: 'The task already left `queued`: the normal race with a short queue.',
  fields: (t) => ({
    message: t.exposeString('message'),
    task: t.field({ type: TaskRef, description: 'The task as it is now.', resolve: (error) => error.task }),
  }),
});
