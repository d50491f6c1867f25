import type { TaskSnapshot } from '../upstream/task-snapshot.ts';
import { builder } from './builder.ts';
import {
  CancelledTaskRef,
  CompletedTaskRef,
  FailedTaskRef,
  ProcessingTaskRef,
  QueuedTaskRef,
  taskTypeNames,
  UnknownTaskRef,
} from './task.ts';
import { type TaskNotFound, TaskNotFoundErrorRef } from './task-errors.ts';
import { TaskWatchErrorRef, type TaskWatchFailure } from './task-watch-error.ts';

/** One event of `tasksUpdated`: a task's new state, or the end of its watch. Each names its task by `id`. */
export type TaskUpdate = TaskSnapshot | TaskNotFound | TaskWatchFailure;

export const TaskUpdateRef = builder.unionType('TaskUpdate', {
  description:
    "One event of `tasksUpdated`: a task in its new state (any `Task` member; `id` says which), or the end of one task's watch: `TaskNotFoundError` (missing, or not the caller's) or `TaskWatchError`.",
  types: [
    QueuedTaskRef,
    ProcessingTaskRef,
    CompletedTaskRef,
    FailedTaskRef,
    CancelledTaskRef,
    UnknownTaskRef,
    TaskNotFoundErrorRef,
    TaskWatchErrorRef,
  ],
  resolveType: (update) => ('kind' in update ? update.kind : taskTypeNames[update.status]),
});
