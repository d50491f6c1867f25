import { type Context, context as otelContext } from '@opentelemetry/api';
import type DataLoader from 'dataloader';
import type { EndUser } from '../identity/end-user.ts';
import type { UserTasks } from '../identity/user-tasks.ts';
import type { TaskPoller } from '../pollers/task-poller.ts';
import type { TaskEvent } from '../pollers/task-sink.ts';
import type { RecentTasksStore } from '../recent-tasks/recent-tasks.ts';
import { type Credential, credentialFromAuthorization } from '../upstream/credential.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';
import type { TasksClient } from '../upstream/tasks-client.ts';
import type { Webhooks } from '../webhooks/webhooks.ts';
import { createUpstreamBudget } from './limits.ts';
import { createTaskLoader } from './task-loader.ts';

const untraced: OperationTrace = Object.freeze({ context: undefined }) as OperationTrace;

/** A signal nobody can abort: its controller is not kept. */
const neverAborted = new AbortController().signal;

/** What every resolver receives: per-request state plus the shared services. */
export interface GatewayContext {
  /**
   * The credential upstream requests are made with: in key mode the caller's (throws `UnauthenticatedError`
   * when it brought none or a malformed one); in jwt mode the server-held `UPSTREAM_API_KEY`.
   */
  credential(): Credential;
  /** The signed-in end user: set from the verified token in jwt mode; null in key mode. */
  user: EndUser | null;
  /** Per-request loader: task id to snapshot, `null` when the upstream answers 404. */
  taskLoader: DataLoader<string, TaskSnapshot | null>;
  /** The upstream client, shared by all requests. */
  tasksClient: TasksClient;
  /** The shared poller, for subscriptions and waits. */
  poller: TaskPoller;
  /** Watches a task for the caller, through the shared poller (in jwt mode only the user's own: another's ends with `TaskNotFoundError`). */
  watchTask(taskId: string): AsyncIterable<TaskEvent>;
  /** In jwt mode: the user's tasks, limits and watches (null in key mode). */
  userTasks: UserTasks | null;
  /** Whose `recentTasks` this caller sees: the user's owner hash in jwt mode, else the key's hash. */
  historyKey(): string;
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
  /** The operation's trace context, once tracing's operation span has started (`src/telemetry`). */
  operationTrace: OperationTrace;
}

/**
 * Where tracing puts the context of the operation a GraphQL context serves. It is
 * one object shared by reference with every copy of the context (yoga copies it),
 * set when the operation starts: the upstream requests made for the operation,
 * after any number of awaits, are made in it.
 */
export interface OperationTrace {
  context: Context | undefined;
}

export interface ContextServices {
  tasksClient: TasksClient;
  poller: TaskPoller;
  recentTasks: RecentTasksStore;
  /** Used when a request brings no key (`UPSTREAM_API_KEY`); null refuses such requests. */
  defaultCredential: Credential | null;
  webhooks: Pick<Webhooks, 'prepare'>;
  now: () => number;
  /** Jwt mode: what each user may see and submit. Default null (key mode). */
  userTasks?: UserTasks | null;
  /** Aborted when the gateway starts to stop. Default: never aborted. */
  stopping?: AbortSignal;
  /**
   * Tracing is on: the client and poller an operation uses enter its trace context at each call (the
   * context manager follows no await). Default false: they are the shared ones, nothing per operation.
   */
  traced?: boolean;
  /** Whether the upstream has accepted a key (by hash), as the scheduler saw it. Default: no key is known accepted. */
  acceptedKey?: (keyHash: string) => boolean;
}

/** A caller already identified: its connection's credential (key mode), or the server's credential and the verified user (jwt mode). */
export interface ResolvedCaller {
  credential: Credential;
  /** Default null (key mode). */
  user?: EndUser | null;
}

/**
 * Builds one operation's context from its `Authorization` value (header or
 * `connectionParams`, key mode), or from a caller already resolved (its
 * connection's credential, or in jwt mode the verified user).
 * Cheap on purpose: a WebSocket holds one per live subscription.
 */
export function createRequestContext(services: ContextServices, authorization: string | null | undefined | ResolvedCaller): GatewayContext {
  const { tasksClient, poller, recentTasks, defaultCredential, now, webhooks, userTasks = null, stopping = neverAborted } = services;
  const caller = typeof authorization === 'object' && authorization !== null ? authorization : undefined;
  let resolved = caller?.credential;
  const credential = () => {
    resolved ??= credentialFromAuthorization(authorization as string | null | undefined, defaultCredential);
    return resolved;
  };
  let budget: ((requests: number) => void) | undefined;
  const spendUpstream = (requests: number) => {
    budget ??= createUpstreamBudget();
    budget(requests);
  };
  const user = caller?.user ?? null;
  // Untraced, nothing of this is made per operation: the services are the shared ones, the slot a shared frozen one.
  const traced = services.traced ? servicesInOperation(services) : null;
  const client = traced?.tasksClient ?? tasksClient;
  const polls = traced?.poller ?? poller;
  const users = traced?.userTasks ?? userTasks;
  const context = {
    credential,
    user,
    tasksClient: client,
    poller: polls,
    watchTask: (taskId: string) => (user && users ? users.watch(user, credential(), taskId) : polls.subscribe(credential(), taskId)),
    userTasks: user ? users : null,
    historyKey: () => user?.ownerHash ?? credential().hash,
    webhooks,
    recentTasks: traced?.recentTasks ?? recentTasks,
    now,
    spendUpstream,
    stopping,
    operationTrace: traced?.slot ?? untraced,
  } as Omit<GatewayContext, 'taskLoader'>;
  return Object.defineProperty(context, 'taskLoader', taskLoaderAccessor) as GatewayContext;
}

/**
 * Tracing on: the services an operation's resolvers use, each call made in the
 * operation's trace context (`slot`, set when its span starts), however many
 * awaits came before it; the context manager follows none.
 */
function servicesInOperation(services: ContextServices) {
  const { tasksClient, poller, recentTasks, userTasks } = services;
  const slot: OperationTrace = { context: undefined };
  const enter = <T>(fn: () => T): T => (slot.context ? otelContext.with(slot.context, fn) : fn());
  /** `service` with `methods` called in the operation's context; its other members as they are. */
  const entering = <S extends object>(service: S, methods: ReadonlyArray<keyof S & string>): S => {
    const wrapped = { ...service } as Record<string, unknown>;
    for (const name of methods) {
      const method = service[name] as (...args: unknown[]) => unknown;
      wrapped[name] = (...args: unknown[]) => enter(() => method.apply(service, args));
    }
    return wrapped as S;
  };
  return {
    slot,
    tasksClient: entering(tasksClient, ['getTask', 'submitTask', 'cancelTask']),
    poller: entering(poller, ['subscribe', 'read', 'waitForEnd']),
    recentTasks: entering(recentTasks, ['record']),
    userTasks: userTasks ? entering(userTasks, ['admit', 'watch']) : null,
  };
}

/**
 * `taskLoader`, made on first use, through one accessor shared by every context: a getter written in
 * the literal is a new function per context and puts each context in dictionary mode (~830 B).
 */
const loaders = new WeakMap<object, GatewayContext['taskLoader']>();
const taskLoaderAccessor: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: GatewayContext) {
    let loader = loaders.get(this);
    if (!loader) {
      const { user, userTasks } = this;
      loader = createTaskLoader(
        async (id) => {
          this.spendUpstream(1);
          const task = await this.poller.read(this.credential(), id);
          if (user && userTasks) userTasks.observed(user, task);
          return task;
        },
        { visible: user && userTasks ? (ids) => userTasks.owned(user, ids) : undefined },
      );
      loaders.set(this, loader);
    }
    return loader;
  },
};
