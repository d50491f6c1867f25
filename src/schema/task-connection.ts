import { builder } from './builder.ts';
import { TaskRef } from './task.ts';

/** A page of tasks, Relay style (`edges { cursor node }`, `pageInfo`), for `recentTasks`. */
export const TaskConnectionRef = builder.connectionObject(
  {
    type: TaskRef,
    name: 'TaskConnection',
    description: 'A page of tasks, newest first.',
    // A task that cannot be read now nulls its own edge (with an error), not the page.
    edgesNullable: { list: false, items: true },
  },
  { name: 'TaskEdge' },
);
