import { type MediaFile, type TaskFailure, type TaskResult, type TaskSnapshot, TaskStatus } from '../upstream/task-snapshot.ts';
import { builder } from './builder.ts';

export const TaskStatusEnum = builder.enumType('TaskStatus', {
  description: 'Where a task is in its life. `UNKNOWN`: the upstream sent a status this gateway does not know yet.',
  values: Object.values(TaskStatus),
});

export const MediaFileRef = builder.objectRef<MediaFile>('MediaFile').implement({
  description: 'One generated file. Its links expire: never store them as permanent.',
  fields: (t) => ({
    urls: t.field({ type: ['URL'], description: 'Links to the same file (mirrors).', resolve: (file) => file.urls }),
    expiresAt: t.field({ type: 'DateTime', nullable: true, resolve: (file) => file.expiresAt }),
    expired: t.boolean({
      description: "Whether `expiresAt` has passed, by the gateway's clock.",
      resolve: (file, _args, context) => file.expiresAt !== null && file.expiresAt.getTime() <= context.now(),
    }),
  }),
});

export const TaskResultRef = builder.objectRef<TaskResult>('TaskResult').implement({
  fields: (t) => ({
    images: t.field({ type: [MediaFileRef], resolve: (result) => result.images }),
    videos: t.field({ type: [MediaFileRef], resolve: (result) => result.videos }),
    audios: t.field({ type: [MediaFileRef], resolve: (result) => result.audios }),
  }),
});

export const TaskErrorRef = builder.objectRef<TaskFailure>('TaskError').implement({
  description: 'Why a task failed, as the upstream said.',
  fields: (t) => ({
    code: t.exposeString('code'),
    message: t.exposeString('message'),
    retryable: t.exposeBoolean('retryable', { description: 'Whether submitting the same task again may succeed.' }),
  }),
});

/** GraphQL type name of the union member for each status. */
export const taskTypeNames = {
  QUEUED: 'QueuedTask',
  PROCESSING: 'ProcessingTask',
  COMPLETED: 'CompletedTask',
  FAILED: 'FailedTask',
  CANCELLED: 'CancelledTask',
  UNKNOWN: 'UnknownTask',
} as const satisfies Record<TaskStatus, string>;

const resolveTaskType = (task: TaskSnapshot) => taskTypeNames[task.status];

export const BaseTaskRef = builder.interfaceRef<TaskSnapshot>('BaseTask').implement({
  description: 'What every task has, whatever its state.',
  resolveType: resolveTaskType,
  fields: (t) => ({
    id: t.exposeID('id'),
    status: t.field({ type: TaskStatusEnum, resolve: (task) => task.status }),
    action: t.exposeString('action', { description: 'As submitted: `generate`, `edit`, `image2video`, ...' }),
    model: t.exposeString('model'),
    progress: t.exposeInt('progress', { nullable: true, description: '0 to 100; 0 while queued; null when the upstream gives none.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (task) => task.createdAt }),
    preConsumedCost: t.exposeFloat('preConsumedCost', {
      nullable: true,
      description: 'Quota units the upstream announced at submission (`pre_consumed_cost`); null when unknown.',
    }),
  }),
});

export const TerminalTaskRef = builder.interfaceRef<TaskSnapshot>('TerminalTask').implement({
  description: 'A task that has ended and will never change again.',
  interfaces: [BaseTaskRef],
  resolveType: resolveTaskType,
  fields: (t) => ({
    completedAt: t.field({ type: 'DateTime', nullable: true, resolve: (task) => task.completedAt }),
    cost: t.exposeFloat('cost', { nullable: true, description: 'Quota units charged; 0 when failed or cancelled.' }),
  }),
});

export const QueuedTaskRef = builder.objectRef<TaskSnapshot>('QueuedTask').implement({
  description: 'Waiting to start; the only state that can be cancelled.',
  interfaces: [BaseTaskRef],
  fields: () => ({}),
});
export const ProcessingTaskRef = builder.objectRef<TaskSnapshot>('ProcessingTask').implement({
  description: 'Being generated; `progress` rises.',
  interfaces: [BaseTaskRef],
  fields: (t) => ({
    estimatedCompletionAt: t.field({
      type: 'DateTime',
      nullable: true,
      description:
        'When the task should end, from the progress rate the gateway observed (smoothed); null until progress has risen at least once while watched.',
      resolve: (task) => task.estimatedCompletionAt ?? null,
    }),
  }),
});
export const FailedTaskRef = builder.objectRef<TaskSnapshot>('FailedTask').implement({
  description: 'Ended without a result.',
  interfaces: [BaseTaskRef, TerminalTaskRef],
  fields: (t) => ({ error: t.field({ type: TaskErrorRef, resolve: (task) => task.error! }) }),
});
export const CompletedTaskRef = builder.objectRef<TaskSnapshot>('CompletedTask').implement({
  description: 'Ended with a result.',
  interfaces: [BaseTaskRef, TerminalTaskRef],
  fields: (t) => ({ result: t.field({ type: TaskResultRef, resolve: (task) => task.result! }) }),
});
export const CancelledTaskRef = builder.objectRef<TaskSnapshot>('CancelledTask').implement({
  description: 'Cancelled while queued; its cost was refunded.',
  interfaces: [BaseTaskRef, TerminalTaskRef],
  fields: (t) => ({
    refundedCost: t.exposeFloat('refundedCost', {
      nullable: true,
      description: 'Quota units refunded, as the cancel answer reported them; null when not reported (a task read later).',
    }),
  }),
});
export const UnknownTaskRef = builder.objectRef<TaskSnapshot>('UnknownTask').implement({
  description: 'A status this gateway does not know yet. It is not final: the gateway keeps watching it.',
  interfaces: [BaseTaskRef],
  fields: (t) => ({ upstreamStatus: t.exposeString('upstreamStatus', { description: 'The status exactly as the upstream sent it.' }) }),
});

export const TaskRef = builder.unionType('Task', {
  description: 'A task, typed by its state: select the fields of the states you handle.',
  types: [QueuedTaskRef, ProcessingTaskRef, CompletedTaskRef, FailedTaskRef, CancelledTaskRef, UnknownTaskRef],
  resolveType: resolveTaskType,
});
