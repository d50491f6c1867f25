import type DataLoader from 'dataloader';
import type { TaskPoller } from '../pollers/task-poller.ts';
import type { TaskEvent } from '../pollers/task-sink.ts';
import type { RecentTasksStore } from '../recent-tasks/recent-tasks.ts';
import { type Credential, credentialFromAuthorization } from '../upstream/credential.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';
import type { TasksClient } from '../upstream/tasks-client.ts';
import type { Webhooks } from '../webhooks.ts';
import { createUpstreamBudget } from './limits.ts';
import { createTaskLoader } from './task-loader.ts';

/** A signal nobody can abort: its controller is not kept. */
const neverAborted = new AbortController().signal;

/** What every resolver receives: per-request state plus the shared services. */
export interface GatewayContext {
  /** The caller's credential; throws `UnauthenticatedError` when it brought none or a malformed one. */
  credential(): Credential;
  /** Per-request loader: task id to snapshot, `null` when the upstream answers 404. */
  taskLoader: DataLoader<string, TaskSnapshot | null>;
  /** The upstream client, shared by all requests. */
  tasksClient: TasksClient;
  /** The shared poller, for subscriptions and waits. */
  poller: TaskPoller;
  /** Watches a task for the caller, through the shared poller. */
  watchTask(taskId: string): AsyncIterable<TaskEvent>;
  /** `callback_url`s for tasks about to be submitted (`prepare` answers null when `PUBLIC_URL` is unset). */
  webhooks: Pick<Webhooks, 'prepare'>;
  /** What each key submitted, by key hash (memory or Redis); `record` never rejects. */
  recentTasks: RecentTasksStore;
  /** Clock in ms, for `MediaFile.expired` and waits. */
  now(): number;
  /** Counts `requests` upstream requests against this operation's allowance; throws `BAD_USER_INPUT` past it. */
  spendUpstream(requests: number): void;
  /** Aborted when the gateway starts to stop: waits end and answer with what they have. */
  stopping: AbortSignal;
}

export interface ContextServices {
  tasksClient: TasksClient;
  poller: TaskPoller;
  recentTasks: RecentTasksStore;
  /** Used when a request brings no key (`UPSTREAM_API_KEY`); null refuses such requests. */
  defaultCredential: Credential | null;
  webhooks: Pick<Webhooks, 'prepare'>;
  now: () => number;
  /** Aborted when the gateway starts to stop. Default: never aborted. */
  stopping?: AbortSignal;
}

/**
 * Builds one operation's context from its `Authorization` value (header or
 * `connectionParams`), or from a credential already resolved for its connection.
 * Cheap on purpose: a WebSocket holds one per live subscription.
 */
export function createRequestContext(
  services: ContextServices,
  authorization: string | null | undefined | { credential: Credential },
): GatewayContext {
  const { tasksClient, poller, recentTasks, defaultCredential, now, webhooks, stopping = neverAborted } = services;
  let resolved = typeof authorization === 'object' && authorization !== null ? authorization.credential : undefined;
  const credential = () => {
    resolved ??= credentialFromAuthorization(authorization as string | null | undefined, defaultCredential);
    return resolved;
  };
  let taskLoader: GatewayContext['taskLoader'] | undefined;
  let budget: ((requests: number) => void) | undefined;
  const spendUpstream = (requests: number) => {
    budget ??= createUpstreamBudget();
    budget(requests);
  };
  return {
    credential,
    // Reads go through the poller: a watched task's fresh snapshot, the terminal cache, or a shared GET.
    get taskLoader() {
      taskLoader ??= createTaskLoader(async (id) => {
        spendUpstream(1);
        return poller.read(credential(), id);
      });
      return taskLoader;
    },
    tasksClient,
    poller,
    watchTask: (taskId) => poller.subscribe(credential(), taskId),
    webhooks,
    recentTasks,
    now,
    spendUpstream,
    stopping,
  };
}
