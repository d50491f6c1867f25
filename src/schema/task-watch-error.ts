import { builder } from './builder.ts';

/** Watching one task of several ended with an error other than "not found". */
export interface TaskWatchFailure {
  kind: 'TaskWatchError';
  id: string;
  code: string;
  message: string;
}

export const TaskWatchErrorRef = builder.objectRef<TaskWatchFailure>('TaskWatchError').implement({
  description:
    'Watching this task ended with an error (`code` as in `extensions.code`: `TIMEOUT`, `UNAUTHENTICATED`, `UPSTREAM_INVALID`, ...); the other tasks go on.',
  fields: (t) => ({ id: t.exposeID('id'), code: t.exposeString('code'), message: t.exposeString('message') }),
});
