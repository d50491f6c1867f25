import { builder } from '../schema/builder.ts';
import { ViewerRef } from '../schema/viewer.ts';

builder.queryField('viewer', (t) =>
  t.field({
    type: ViewerRef,
    description: 'Who is calling (the signed-in user in jwt mode) and where they stand against their per-user limits.',
    resolve: async (_root, _args, context) => {
      const { user, userTasks } = context;
      if (!user) return { id: null, limits: [] };
      return { id: user.id, limits: userTasks ? await userTasks.usage(user) : [] };
    },
  }),
);
