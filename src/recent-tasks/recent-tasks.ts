import { context as otelContext } from '@opentelemetry/api';
import { createLruMap } from '../lib/lru-map.ts';

/**
 * What each key submitted through the gateway, newest first, for
 * `recentTasks`: task ids only, filed under the key's hash (never the key).
 */

/** One submission as recorded. */
export interface RecentTask {
  taskId: string;
  /** When the gateway recorded the submission, in ms. */
  submittedAt: number;
  /** What the submit answer announced (`pre_consumed_cost`); null when it gave none. */
  preConsumedCost: number | null;
}

/** Where a page starts: just after this entry, in newest-first order. */
export interface RecentTasksCursor {
  submittedAt: number;
  taskId: string;
}

export interface RecentTasksPage {
  entries: RecentTask[];
  hasNextPage: boolean;
}

export interface RecentTasksStore {
  /** Records a submission; a task id already recorded for this key is kept as it was (idempotent resubmits). */
  record(keyHash: string, entry: RecentTask): Promise<void>;
  /** Up to `first` entries after `after` (from the newest when null), newest first; expired entries are never returned. */
  page(keyHash: string, first: number, after: RecentTasksCursor | null): Promise<RecentTasksPage>;
  dispose(): Promise<void>;
}

/** A store that cannot answer now (Redis unreachable): `recentTasks` says so rather than answering an empty page. */
export class RecentTasksUnavailableError extends Error {
  override name = 'RecentTasksUnavailableError';
}

/** How long entries are kept, in ms: 72 h, the upstream's result-link lifetime. */
export const RECENT_TASKS_RETENTION_MS = 72 * 3_600_000;

/** Newest first; ties (the same ms) by task id, descending, as a Redis sorted set orders them. */
export function newerFirst(a: RecentTasksCursor, b: RecentTasksCursor): number {
  return b.submittedAt - a.submittedAt || (a.taskId < b.taskId ? 1 : a.taskId > b.taskId ? -1 : 0);
}

/** An opaque cursor: base64url of `<ms>:<task id>`. */
export function encodeCursor(cursor: RecentTasksCursor): string {
  return Buffer.from(`${cursor.submittedAt}:${cursor.taskId}`).toString('base64url');
}

/** The cursor a page was given, or null when it is not one of ours. */
export function decodeCursor(text: string): RecentTasksCursor | null {
  if (text.length > 400) return null;
  const match = /^(\d{1,16}):(.+)$/.exec(Buffer.from(text, 'base64url').toString('utf8'));
  return match ? { submittedAt: Number(match[1]), taskId: match[2]! } : null;
}

export interface MemoryRecentTasksOptions {
  /** Entries kept per key; the oldest go first. Default 1 000. */
  maxPerKey?: number;
  /** Keys remembered; the least recently used goes first. Default 10 000. */
  maxKeys?: number;
  /** How long an entry is kept, in ms. Default 259 200 000 (72 h). */
  retentionMs?: number;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

/** The same store, but `record` never rejects: a failure is reported to `onFailure` (a submission is never failed by its history). */
export function recordingNeverFails(store: RecentTasksStore, onFailure: () => void): RecentTasksStore {
  // Told in the caller's trace context: its log line carries the operation's ids.
  return { ...store, record: (keyHash, entry) => store.record(keyHash, entry).catch(otelContext.bind(otelContext.active(), onFailure)) };
}

/** The single-process store: bounded in keys and in entries per key. */
export function createMemoryRecentTasks(options: MemoryRecentTasksOptions = {}): RecentTasksStore & { size(): number } {
  const {
    maxPerKey = 1_000,
    maxKeys = 10_000,
    retentionMs = RECENT_TASKS_RETENTION_MS, // 72 h
    now = Date.now,
  } = options;
  /** Per key hash, newest first. */
  const byKey = createLruMap<string, RecentTask[]>({ maxEntries: maxKeys });

  /** The key's live entries, marked as just used; expired ones are dropped on the way. */
  function entriesOf(keyHash: string): RecentTask[] | undefined {
    const entries = byKey.get(keyHash);
    if (!entries) return undefined;
    const cutoff = now() - retentionMs;
    while (entries.length > 0 && entries.at(-1)!.submittedAt <= cutoff) entries.pop();
    if (entries.length > 0) return entries;
    byKey.delete(keyHash);
    return undefined;
  }

  return {
    async record(keyHash, entry) {
      const entries = entriesOf(keyHash) ?? [];
      if (entries.some((recorded) => recorded.taskId === entry.taskId)) return;
      const at = entries.findIndex((recorded) => newerFirst(entry, recorded) < 0);
      entries.splice(at === -1 ? entries.length : at, 0, { ...entry });
      if (entries.length > maxPerKey) entries.length = maxPerKey;
      byKey.set(keyHash, entries);
    },
    async page(keyHash, first, after) {
      const entries = entriesOf(keyHash) ?? [];
      const start = after ? entries.findIndex((entry) => newerFirst(after, entry) < 0) : 0;
      const rest = start === -1 ? [] : entries.slice(start);
      return { entries: rest.slice(0, first).map((entry) => ({ ...entry })), hasNextPage: rest.length > first };
    },
    size: () => byKey.size,
    async dispose() {
      byKey.clear();
    },
  };
}
