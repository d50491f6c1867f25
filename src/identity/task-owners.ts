import { GatewayError } from '../errors.ts';
import { createLruMap } from '../lib/lru-map.ts';
import { realScheduler, type Scheduler } from '../lib/scheduler.ts';

/**
 * Who submitted each task (AUTH_MODE=jwt): task id to the owner hash of the
 * user who submitted it through the gateway, never the user id in clear.
 * Records live `TASK_OWNER_RETENTION_MS` from the submit: a generous TTL that
 * covers a task's run and the 72 h its result links live after it ends.
 */
export interface TaskOwners {
  /** Records `taskId` as `ownerHash`'s; rejects with `TaskOwnersUnavailableError` when the record could not be written. */
  record(taskId: string, ownerHash: string): Promise<void>;
  /** The owner hash of each task (null: no record), in the order asked; rejects with `TaskOwnersUnavailableError`. */
  ownersOf(taskIds: readonly string[]): Promise<Array<string | null>>;
  /** Resolves when the store can take a record now; rejects with `TaskOwnersUnavailableError` otherwise. */
  ready(): Promise<void>;
  dispose(): Promise<void>;
}

/** The owners' store cannot be reached: nothing was submitted, or (mid-submit) the record is still being retried. */
export class TaskOwnersUnavailableError extends GatewayError {
  override readonly code = 'TASK_OWNERS_UNAVAILABLE';
  override readonly clientCode = 'SERVICE_UNAVAILABLE';
  override readonly transient = true;
}

/**
 * How long an owner record is kept, in ms: 7 days from the submit. A task's
 * result links live 72 h after it ends; this leaves four days for the task to
 * run, far past `POLL_TIMEOUT_MS`'s longest watch (24 h).
 */
export const TASK_OWNER_RETENTION_MS = 7 * 86_400_000;

export interface MemoryTaskOwnersOptions {
  /** Records kept; the oldest go first (their tasks then look like someone else's: `null`). Default 100 000. */
  maxEntries?: number;
  /** Records kept per owner: past it, that owner's own oldest goes, so one user cannot push out the others'. Default 10 000. */
  maxEntriesPerOwner?: number;
  /** How long a record is kept, in ms. Default 604 800 000 (7 days). */
  retentionMs?: number;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

/** The single-process store: bounded in records in all and per owner, each expiring after `retentionMs`. */
export function createMemoryTaskOwners(options: MemoryTaskOwnersOptions = {}): TaskOwners & { size(): number } {
  const {
    maxEntries = 100_000,
    maxEntriesPerOwner = 10_000,
    retentionMs = TASK_OWNER_RETENTION_MS, // 7 days
    now = Date.now,
  } = options;
  /** Each owner's task ids, oldest first. */
  const byOwner = new Map<string, Set<string>>();
  const untrack = (taskId: string, ownerHash: string) => {
    const tasks = byOwner.get(ownerHash);
    tasks?.delete(taskId);
    if (tasks?.size === 0) byOwner.delete(ownerHash);
  };
  const records = createLruMap<string, { ownerHash: string; until: number }>({
    maxEntries,
    onEvict: (taskId, record) => untrack(taskId, record.ownerHash),
  });
  const forget = (taskId: string, ownerHash: string) => {
    records.delete(taskId);
    untrack(taskId, ownerHash);
  };
  const ownerOf = (taskId: string) => {
    const record = records.peek(taskId);
    if (!record) return null;
    if (record.until > now()) return record.ownerHash;
    forget(taskId, record.ownerHash);
    return null;
  };
  return {
    async record(taskId, ownerHash) {
      // An idempotent resubmit answers the same task: its first owner stays.
      if (ownerOf(taskId) !== null) return;
      records.set(taskId, { ownerHash, until: now() + retentionMs });
      const tasks = byOwner.get(ownerHash) ?? new Set<string>();
      byOwner.set(ownerHash, tasks);
      tasks.add(taskId);
      if (tasks.size > maxEntriesPerOwner) forget(tasks.values().next().value as string, ownerHash);
    },
    ownersOf: async (taskIds) => taskIds.map(ownerOf),
    ready: async () => undefined,
    size: () => records.size,
    dispose: async () => undefined,
  };
}

export interface RecordOwnerOptions {
  /** How long to keep retrying a failed write before giving up on this request, in ms. Default 15 000 (15 s). */
  deadlineMs?: number;
  /** First delay between attempts, doubled up to 1 s, in ms. Default 100. */
  retryMs?: number;
  scheduler?: Scheduler;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

/**
 * Records a task's owner after the upstream accepted it, retrying until the
 * write holds (the store died mid-submit and comes back) or `deadlineMs`
 * passes, when it rejects with `TaskOwnersUnavailableError`: the caller then
 * answers a retryable error naming the idempotency key, and a retry with it
 * gets the same task from the upstream and records it.
 */
export async function recordOwner(owners: TaskOwners, taskId: string, ownerHash: string, options: RecordOwnerOptions = {}) {
  const { deadlineMs = 15_000, retryMs = 100, scheduler = realScheduler, now = Date.now } = options;
  const giveUpAt = now() + deadlineMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await owners.record(taskId, ownerHash);
    } catch (error) {
      const delay = Math.min(1_000, retryMs * 2 ** attempt);
      if (now() + delay > giveUpAt) throw error;
      await new Promise<void>((resolve) => scheduler.setTimeout(resolve, delay));
    }
  }
}
