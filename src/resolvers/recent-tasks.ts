import { badUserInput, gatewayError } from '../graphql/errors.ts';
import { decodeCursor, encodeCursor, RecentTasksUnavailableError } from '../recent-tasks/recent-tasks.ts';
import { builder } from '../schema/builder.ts';
import { TaskConnectionRef } from '../schema/task-connection.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

/** Most tasks one `recentTasks` page may hold: each one not finished costs one upstream GET. */
export const MAX_RECENT_TASKS_PAGE = 100;

builder.queryField('recentTasks', (t) =>
  t.field({
    type: TaskConnectionRef,
    description: `The tasks this key (in jwt mode: this user) submitted through the gateway in the last 72 h, newest first, each as it is now (read like \`tasks(ids)\`: finished tasks cost no upstream call). \`first\`: 1 to ${MAX_RECENT_TASKS_PAGE}; \`after\`: a cursor from an earlier page.`,
    args: {
      first: t.arg.int({ defaultValue: 20 }),
      after: t.arg.string(),
    },
    resolve: async (_root, args, context) => {
      const first = args.first ?? 20;
      if (!Number.isInteger(first) || first < 1 || first > MAX_RECENT_TASKS_PAGE) {
        throw badUserInput(`first must be from 1 to ${MAX_RECENT_TASKS_PAGE}; got ${first}.`);
      }
      const after = args.after == null ? null : decodeCursor(args.after);
      if (args.after != null && after === null) throw badUserInput('after is not a cursor of recentTasks.');
      let page: Awaited<ReturnType<typeof context.recentTasks.page>>;
      try {
        page = await context.recentTasks.page(context.historyKey(), first, after);
      } catch (error) {
        if (!(error instanceof RecentTasksUnavailableError)) throw error;
        throw gatewayError('SERVICE_UNAVAILABLE', error.message);
      }
      // Through the request's loader: shared with `task`/`tasks` in the same operation, the terminal cache, fresh loop states.
      const nodes = await context.taskLoader.loadMany(page.entries.map((entry) => entry.taskId));
      const edges = page.entries.flatMap((entry, i): Array<{ cursor: string; node: TaskSnapshot | Error }> => {
        const node = nodes[i] as TaskSnapshot | null | Error;
        // Gone upstream (404): left out, as a task this key cannot see.
        if (node === null) return [];
        const cursor = encodeCursor(entry);
        if (node instanceof Error) return [{ cursor, node }];
        return [{ cursor, node: { ...node, preConsumedCost: node.preConsumedCost ?? entry.preConsumedCost } }];
      });
      const last = page.entries.at(-1);
      return {
        edges: edges as Array<{ cursor: string; node: TaskSnapshot }>,
        pageInfo: {
          hasNextPage: page.hasNextPage,
          hasPreviousPage: after !== null,
          startCursor: page.entries[0] ? encodeCursor(page.entries[0]) : null,
          endCursor: last ? encodeCursor(last) : null,
        },
      };
    },
  }),
);
