import { createLruMap, type LruMap } from '../lib/lru-map.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

export interface TerminalCacheOptions {
  /** Most snapshots kept in all; the least recently used goes first. Default 10 000. */
  maxEntries?: number;
  /** Most snapshots kept for one credential; past it that credential's least recently used goes. Default 1 000. */
  maxEntriesPerKey?: number;
  /** How long one is kept, in ms. Default 3 600 000 (1 h). */
  ttlMs?: number;
  now?: () => number;
}

/**
 * Final snapshots by (credential hash, task id), so that later readers and
 * subscribers of a finished task cost no upstream call. A terminal task never
 * changes, so the only reason to forget one is memory: bounded in all and per
 * credential, so that one key's many finished tasks never push out another's.
 */
export interface TerminalCache {
  get(owner: string, taskId: string): TaskSnapshot | undefined;
  set(owner: string, taskId: string, snapshot: TaskSnapshot): void;
  readonly size: number;
}

interface Entry {
  snapshot: TaskSnapshot;
  expiresAt: number;
  owner: string;
  taskId: string;
}

export function createTerminalCache(options: TerminalCacheOptions = {}): TerminalCache {
  const { maxEntries = 10_000, maxEntriesPerKey = 1_000, ttlMs = 3_600_000, now = Date.now } = options;
  // One entry lives in both maps: `all` for the total bound, its owner's map for the per-key one; either dropping it drops it from the other.
  const owners = new Map<string, LruMap<string, Entry>>();
  const keyOf = (owner: string, taskId: string) => `${owner}\n${taskId}`;
  const forgetInOwner = (entry: Entry) => {
    const mine = owners.get(entry.owner);
    mine?.delete(entry.taskId);
    if (mine?.size === 0) owners.delete(entry.owner);
  };
  const all = createLruMap<string, Entry>({ maxEntries, onEvict: (_key, entry) => forgetInOwner(entry) });
  const ownerMap = (owner: string) =>
    createLruMap<string, Entry>({ maxEntries: maxEntriesPerKey, onEvict: (taskId) => all.delete(keyOf(owner, taskId)) });

  return {
    get(owner, taskId) {
      const entry = all.get(keyOf(owner, taskId));
      if (!entry) return undefined;
      if (entry.expiresAt <= now()) {
        all.delete(keyOf(owner, taskId));
        forgetInOwner(entry);
        return undefined;
      }
      owners.get(owner)?.get(taskId);
      return entry.snapshot;
    },
    set(owner, taskId, snapshot) {
      const entry: Entry = { snapshot, expiresAt: now() + ttlMs, owner, taskId };
      let mine = owners.get(owner);
      if (!mine) {
        mine = ownerMap(owner);
        owners.set(owner, mine);
      }
      mine.set(taskId, entry);
      all.set(keyOf(owner, taskId), entry);
    },
    get size() {
      return all.size;
    },
  };
}
