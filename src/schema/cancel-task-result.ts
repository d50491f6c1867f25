import { builder } from './builder.ts';
import { CancelledTaskRef } from './task.ts';
import { TaskNotCancellableErrorRef, TaskNotFoundErrorRef } from './task-errors.ts';

export const CancelTaskResultRef = builder.unionType('CancelTaskResult', {
  types: [CancelledTaskRef, TaskNotFoundErrorRef, TaskNotCancellableErrorRef],
  resolveType: (value) => ('kind' in value ? value.kind : 'CancelledTask'),
});
