import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

/**
 * Who polls a watched (credential, task) and how the changes found reach its
 * watchers. The in-memory coordinator below serves one process; a Redis one
 * lets several replicas share one loop per task (a lease decides who polls,
 * a channel carries what it found).
 */
export interface LoopCoordinator {
  /**
   * Joins the loop of `key` (`<credential hash>:<task id>`, never a key) in this
   * process; `deliver` then receives every snapshot found for it, by any process.
   */
  join(key: string, deliver: (snapshot: TaskSnapshot) => void): LoopMembership;
}

export interface LoopMembership {
  /** Whether this process should poll now (it holds the loop's lease). */
  mayPoll(): boolean | Promise<boolean>;
  /** Shares a snapshot that this process fetched with every process in the loop. */
  publish(snapshot: TaskSnapshot): void;
  /** Leaves the loop: no more deliveries. */
  leave(): void;
}

/** One process: it always polls, and what it finds goes straight to its own watchers. */
export function createLocalCoordinator(): LoopCoordinator {
  return {
    join(_key, deliver) {
      let joined = true;
      return {
        mayPoll: () => joined,
        publish: (snapshot) => {
          if (joined) deliver(snapshot);
        },
        leave: () => {
          joined = false;
        },
      };
    },
  };
}
