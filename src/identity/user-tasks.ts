import { randomUUID } from 'node:crypto';
import { context as otelContext } from '@opentelemetry/api';
import DataLoader from 'dataloader';
import { TooManySubscriptionsError } from '../errors.ts';
import type { Scheduler } from '../lib/scheduler.ts';
import { sha256 } from '../lib/sha256.ts';
import type { TaskPoller } from '../pollers/task-poller.ts';
import type { TaskEvent } from '../pollers/task-sink.ts';
import type { Credential } from '../upstream/credential.ts';
import { TaskNotFoundError } from '../upstream/errors.ts';
import { isTerminal, type TaskSnapshot, TaskStatus } from '../upstream/task-snapshot.ts';
import type { EndUser } from './end-user.ts';
import { recordOwner, type TaskOwners } from './task-owners.ts';
import type { LimitRefusal, LimitUsage, Refund, UserLimits } from './user-limits.ts';

export interface UserTasksOptions {
  owners: TaskOwners;
  /** Null when no per-user limit is configured: nothing is counted. */
  limits: UserLimits | null;
  poller: Pick<TaskPoller, 'read' | 'subscribe'>;
  /** `USER_MAX_WATCHED_TASKS`: tasks one user may watch at once in this process. Default 100. */
  maxWatchedTasks?: number;
  /** How long a submit keeps retrying its owner record while the store is down, in ms. Default 15 000 (15 s). */
  ownerRecordDeadlineMs?: number;
  scheduler?: Scheduler;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

/** A submit admitted by the limits: its ticket, to report what became of it. */
export type Admission = { refusal: LimitRefusal; ticket?: undefined } | { refusal?: undefined; ticket: string };

/**
 * What a signed-in user may see and do with tasks (AUTH_MODE=jwt): only the
 * tasks they submitted through the gateway, watched within their own cap, and
 * submitted within their limits. Another user's task is answered exactly as a
 * task that does not exist, after the same one lookup of owners and no upstream request.
 */
export interface UserTasks {
  /** Whether each task is the user's, in the order asked (one store round trip). */
  owned(user: EndUser, taskIds: readonly string[]): Promise<boolean[]>;
  /** Watches one of the user's tasks through the shared poller; another's (or none) ends with `TaskNotFoundError`. */
  watch(user: EndUser, credential: Credential, taskId: string): AsyncIterableIterator<TaskEvent>;
  /** A state of one of the user's tasks was seen: a terminal one ends its count (and gives back a refund). */
  observed(user: EndUser, task: TaskSnapshot): void;
  /**
   * Before a submit: checks the owners' store can take a record (else `TaskOwnersUnavailableError`, nothing submitted),
   * then the limits; before refusing for active tasks or spend, re-reads the user's unfinished tasks (at most
   * `USER_MAX_ACTIVE_TASKS` reads, through the key's budget) and drops those that ended.
   */
  admit(user: EndUser, credential: Credential): Promise<Admission>;
  /** After the upstream accepted: records the owner (retrying while the store is down) and counts the task. */
  accepted(user: EndUser, ticket: string | undefined, task: TaskSnapshot): Promise<void>;
  /** The submit reached no task: its place is given back. */
  failed(user: EndUser, ticket: string | undefined): void;
  /** Each configured limit with what the user has used. */
  usage(user: EndUser): Promise<LimitUsage[]>;
}

/**
 * The `Idempotency-Key` sent upstream for a user's key: every user shares the server's upstream key,
 * so two users choosing the same key must not get the same task (the second would be answered the first's).
 */
export function userIdempotencyKey(user: EndUser, key: string): string {
  return `u-${sha256(`${user.ownerHash}\n${key}`)}`;
}

/** Unfinished tasks re-read before a spend refusal when `USER_MAX_ACTIVE_TASKS` is off. */
const SPEND_RECONCILE_READS = 10;

/** What a task's end gives back from the day's spend: a cancelled or failed task cost nothing (`cost` 0 upstream). */
function refundOf(task: TaskSnapshot): Refund {
  if (task.status === TaskStatus.CANCELLED) return task.refundedCost ?? 'counted';
  return task.status === TaskStatus.FAILED ? 'counted' : 'none';
}

export function createUserTasks(options: UserTasksOptions): UserTasks {
  const { owners, limits, poller, maxWatchedTasks = 100, ownerRecordDeadlineMs = 15_000, scheduler, now } = options;
  /** Live watches per owner hash; an entry exists only while its count is above 0. */
  const watching = new Map<string, number>();
  const ignore = () => undefined;

  const observed = (user: EndUser, task: TaskSnapshot) => {
    if (limits && isTerminal(task.status)) limits.ended(user.ownerHash, task.id, refundOf(task)).catch(ignore);
  };

  const owned = async (user: EndUser, taskIds: readonly string[]) =>
    (await owners.ownersOf(taskIds)).map((owner) => owner === user.ownerHash);
  // The watches one operation opens at once (`tasksUpdated(ids)`) ask for their owners in one round trip.
  const ownerOf = new DataLoader<string, string | null>((ids) => owners.ownersOf(ids), { cache: false, maxBatchSize: 100 });

  /** Re-reads up to `max` unfinished tasks and ends those that ended; true when any did. */
  async function reconcile(user: EndUser, credential: Credential, max: number, read: TaskPoller['read']): Promise<boolean> {
    if (!limits) return false;
    const ids = await limits.unfinished(user.ownerHash, max);
    const ended = await Promise.all(
      ids.map(async (id) => {
        try {
          const task = await read(credential, id);
          if (!isTerminal(task.status)) return false;
          await limits.ended(user.ownerHash, id, refundOf(task));
        } catch (error) {
          if (!(error instanceof TaskNotFoundError)) return false;
          await limits.ended(user.ownerHash, id, 'none');
        }
        return true;
      }),
    );
    return ended.includes(true);
  }

  return {
    owned,
    observed,
    watch(user, credential, taskId) {
      let inner: AsyncIterableIterator<TaskEvent> | null = null;
      let left = false;
      let counted = false;
      const release = () => {
        if (!counted) return;
        counted = false;
        const count = (watching.get(user.ownerHash) ?? 1) - 1;
        if (count === 0) watching.delete(user.ownerHash);
        else watching.set(user.ownerHash, count);
      };
      const end = (event: TaskEvent): AsyncIterableIterator<TaskEvent> => {
        let sent = false;
        const once: AsyncIterableIterator<TaskEvent> = {
          async next() {
            if (sent) return { value: undefined, done: true };
            sent = true;
            return { value: event, done: false };
          },
          return: async () => ({ value: undefined, done: true }),
          [Symbol.asyncIterator]: () => once,
        };
        return once;
      };
      /** What each step of the watch tells the user's counts. */
      const stepped = (step: IteratorResult<TaskEvent>) => {
        if (step.done) release();
        else if (!(step.value instanceof Error)) observed(user, step.value);
        return step;
      };
      // Dropped once opened: a watch that lasts an hour holds its iterator, not the chain that opened it.
      // The watch is opened in the caller's trace context (the operation's), after the owner's lookup.
      let opening: Promise<AsyncIterableIterator<TaskEvent>> | null = ownerOf.load(taskId).then(
        otelContext.bind(otelContext.active(), (owner: string | null) => {
          if (left || owner !== user.ownerHash) return end(new TaskNotFoundError(taskId));
          if ((watching.get(user.ownerHash) ?? 0) >= maxWatchedTasks) {
            return end(new TooManySubscriptionsError(`You already watch ${maxWatchedTasks} tasks (USER_MAX_WATCHED_TASKS).`));
          }
          watching.set(user.ownerHash, (watching.get(user.ownerHash) ?? 0) + 1);
          counted = true;
          return poller.subscribe(credential, taskId);
        }),
        (error: Error) => end(error as TaskEvent),
      );
      const opened = async () => {
        if (inner) return inner;
        inner = await opening!;
        opening = null;
        return inner;
      };
      // Not async functions: a waiting watch holds one promise from its inner iterator, not a suspended frame as well.
      const iterator: AsyncIterableIterator<TaskEvent> = {
        next: () => (inner ? inner.next().then(stepped) : opened().then((it) => it.next().then(stepped))),
        async return() {
          left = true;
          release();
          await (await opened()).return?.();
          return { value: undefined, done: true };
        },
        [Symbol.asyncIterator]: () => iterator,
      };
      return iterator;
    },
    async admit(user, credential) {
      // Its reads, after the awaits below, are made in the caller's trace context (the submit's).
      const read = otelContext.bind(otelContext.active(), poller.read);
      await owners.ready();
      const ticket = randomUUID();
      if (!limits) return { ticket };
      let refusal = await limits.admit(user.ownerHash, ticket);
      if (refusal && refusal.limit !== 'SUBMITS_PER_MINUTE') {
        // The active set never holds more than USER_MAX_ACTIVE_TASKS: at most that many reads.
        const max = refusal.limit === 'ACTIVE_TASKS' ? Number.MAX_SAFE_INTEGER : SPEND_RECONCILE_READS;
        if (await reconcile(user, credential, max, read)) refusal = await limits.admit(user.ownerHash, ticket);
      }
      return refusal ? { refusal } : { ticket };
    },
    async accepted(user, ticket, task) {
      await recordOwner(owners, task.id, user.ownerHash, { deadlineMs: ownerRecordDeadlineMs, scheduler, now });
      if (limits && ticket) await limits.accepted(user.ownerHash, ticket, task.id, task.preConsumedCost).catch(ignore);
      observed(user, task);
    },
    failed(user, ticket) {
      if (limits && ticket) limits.release(user.ownerHash, ticket).catch(ignore);
    },
    usage: async (user) => (limits ? limits.usage(user.ownerHash) : []),
  };
}
