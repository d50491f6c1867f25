import { LimitName, type LimitRefusal, SPEND_PENDING_RETRY_MS } from '../identity/user-limits.ts';
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

export const UserLimitNameEnum = builder.enumType('UserLimitName', {
  description:
    'A per-user limit (AUTH_MODE=jwt): `ACTIVE_TASKS` (USER_MAX_ACTIVE_TASKS), `SUBMITS_PER_MINUTE` (USER_SUBMITS_PER_MINUTE), `DAILY_SPEND` (USER_DAILY_SPEND, quota units per UTC day).',
  values: Object.values(LimitName),
});

/** A submit refused by a per-user limit, before anything reached the upstream. */
export interface SubmitLimit extends LimitRefusal {
  kind: 'SubmitLimitError';
  message: string;
}

export const SubmitLimitErrorRef = builder.objectRef<SubmitLimit>('SubmitLimitError').implement({
  description: 'The submit was refused by a per-user limit; nothing reached the upstream and nothing was spent.',
  fields: (t) => ({
    limit: t.field({ type: UserLimitNameEnum, resolve: (error) => error.limit }),
    message: t.exposeString('message'),
    retryAfterMs: t.exposeInt('retryAfterMs', {
      nullable: true,
      description: 'When submitting again may succeed, in ms from now; null when it waits for a task to end (`ACTIVE_TASKS`).',
    }),
    resetsAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the limit frees up; null as `retryAfterMs`.',
      resolve: (error) => (error.resetsAt === null ? null : new Date(error.resetsAt)),
    }),
  }),
});

const messages: Record<LimitName, (refusal: LimitRefusal) => string> = {
  ACTIVE_TASKS: () => 'You have as many unfinished tasks as allowed (USER_MAX_ACTIVE_TASKS): submit again when one ends.',
  SUBMITS_PER_MINUTE: (refusal) =>
    `You submitted as many tasks in the last minute as allowed (USER_SUBMITS_PER_MINUTE): try again in ${Math.ceil((refusal.retryAfterMs ?? 0) / 1000)} s.`,
  DAILY_SPEND: (refusal) =>
    refusal.retryAfterMs !== null && refusal.retryAfterMs <= SPEND_PENDING_RETRY_MS
      ? "Your submits still waiting for the upstream's answer could take you to today's spending limit (USER_DAILY_SPEND): try again in 1 s."
      : "You reached today's spending limit (USER_DAILY_SPEND): it resets at midnight UTC.",
};

/** The `SubmitLimitError` answered for a refusal. */
export const submitLimitError = (refusal: LimitRefusal): SubmitLimit => ({
  kind: 'SubmitLimitError',
  message: messages[refusal.limit](refusal),
  ...refusal,
});

export const SubmitTaskResultRef = builder.unionType('SubmitTaskResult', {
  description: 'The task as submitted (any `Task` member), or `SubmitLimitError` when a per-user limit refused it.',
  types: [QueuedTaskRef, ProcessingTaskRef, CompletedTaskRef, FailedTaskRef, CancelledTaskRef, UnknownTaskRef, SubmitLimitErrorRef],
  resolveType: (result: TaskSnapshot | SubmitLimit) => ('kind' in result ? result.kind : taskTypeNames[result.status]),
});
