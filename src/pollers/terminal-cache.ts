import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

export interface TerminalCacheOptions {
  /** Most snapshots kept; the oldest goes first. Default 10 000. */
  maxEntries?: number;
  /** How long one is kept, in ms. Default 3 600 000 (1 h). */
  ttlMs?: number;
  now?: () => number;
}

/**
 * Final snapshots by (credential hash, task id), so that later readers and
 * subscribers of a finished task cost no upstream call. A terminal task never
 * changes, so the only reason to forget one is memory.
 */
export interface TerminalCache {
  get(key: string): TaskSnapshot | undefined;
  set(key: string, snapshot: TaskSnapshot): void;
  readonly size: number;
}

export function createTerminalCache(options: TerminalCacheOptions = {}): TerminalCache {
  const { maxEntries = 10_000, ttlMs = 3_600_000, now = Date.now } = options;
  const entries = new Map<string, { snapshot: TaskSnapshot; expiresAt: number }>();
  return {
    get(key) {
      const entry = entries.get(key);
      if (!entry) return undefined;
      if (entry.expiresAt <= now()) {
        entries.delete(key);
        return undefined;
      }
      return entry.snapshot;
    },
    set(key, snapshot) {
      entries.delete(key);
      entries.set(key, { snapshot, expiresAt: now() + ttlMs });
      // Maps iterate in insertion order: the first key is the oldest.
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
    },
    get size() {
      return entries.size;
    },
  };
}
