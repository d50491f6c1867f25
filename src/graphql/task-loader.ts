import DataLoader from 'dataloader';
import { TaskNotFoundError } from '../upstream/errors.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

export interface TaskLoaderOptions {
  /** Upstream GETs in flight at once for one batch. Default 8. */
  concurrency?: number;
  /** Largest batch. Default 100. */
  maxBatchSize?: number;
  /** Which ids the caller may see, asked once per batch before any read; the others answer `null` unread. Default: all. */
  visible?: (ids: readonly string[]) => Promise<boolean[]>;
}

/**
 * A per-request DataLoader: one `read` per distinct id however often the
 * operation names it, at most `concurrency` at once, results in request order.
 * A 404 becomes `null`; any other failure stays that id's own error.
 */
export function createTaskLoader(
  read: (id: string) => Promise<TaskSnapshot>,
  options: TaskLoaderOptions = {},
): DataLoader<string, TaskSnapshot | null> {
  const { concurrency = 8, maxBatchSize = 100, visible } = options;
  return new DataLoader(
    async (ids) => {
      const results: Array<TaskSnapshot | null | Error> = new Array(ids.length);
      const seen = visible ? await visible(ids) : null;
      let next = 0;
      const worker = async () => {
        for (let index = next++; index < ids.length; index = next++) {
          if (seen && !seen[index]) {
            results[index] = null;
            continue;
          }
          try {
            results[index] = await read(ids[index]!);
          } catch (error) {
            results[index] = error instanceof TaskNotFoundError ? null : (error as Error);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
      return results;
    },
    { maxBatchSize },
  );
}
