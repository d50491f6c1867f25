import type { LimitUsage } from '../identity/user-limits.ts';
import { builder } from './builder.ts';
import { UserLimitNameEnum } from './submit-task-result.ts';

/** Who is calling, and where they stand against their limits. */
export interface ViewerShape {
  /** The signed-in user's id (jwt mode); null in key mode. */
  id: string | null;
  limits: LimitUsage[];
}

export const UserLimitRef = builder.objectRef<LimitUsage>('UserLimit').implement({
  description: 'One configured per-user limit and where the caller stands against it.',
  fields: (t) => ({
    limit: t.field({ type: UserLimitNameEnum, resolve: (usage) => usage.limit }),
    max: t.exposeFloat('max', { description: 'The limit as configured.' }),
    used: t.exposeFloat('used', { description: 'What the caller has used of it now (for `DAILY_SPEND`: quota units today, UTC).' }),
    resetsAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When `used` next goes down by time alone; null for `ACTIVE_TASKS` (it goes down as tasks end) or when nothing is used.',
      resolve: (usage) => (usage.resetsAt === null ? null : new Date(usage.resetsAt)),
    }),
  }),
});

export const ViewerRef = builder.objectRef<ViewerShape>('Viewer').implement({
  description: 'The caller.',
  fields: (t) => ({
    id: t.exposeID('id', { nullable: true, description: "The signed-in user's id (the token's user claim); null in key mode." }),
    limits: t.field({
      type: [UserLimitRef],
      description: 'Each configured per-user limit (AUTH_MODE=jwt), with what is used; empty when none is configured or in key mode.',
      resolve: (viewer) => viewer.limits,
    }),
  }),
});
