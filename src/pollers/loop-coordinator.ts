import type { TaskSnapshot } from '../upstream/task-snapshot.ts';

/**
 * Who polls a watched (credential, task) and how the changes found reach its
 * watchers. The in-memory coordinator below serves one process; a Redis one
 * lets several replicas share one loop per task (a lease decides who polls,
 * a channel carries what it found).
 */
export interface LoopCoordinator {
  /** This process's name among the replicas, when there are several. */
  readonly replicaId?: string;
  /**
   * Joins the loop of `key` (`<credential hash>:<task id>`, never a key) in this
   * process; `deliver` then receives every snapshot found for it, by any process.
   */
  join(key: string, deliver: (snapshot: TaskSnapshot) => void, nudged?: () => void): LoopMembership;
  /** Shares a snapshot fetched outside any loop (a query, a webhook) with the processes that watch it. */
  announce(key: string, snapshot: TaskSnapshot): void;
  /** Tells every process watching `key` that the task changed (a webhook arrived elsewhere): `nudged` runs there. */
  nudge(key: string): void;
  /** Whether coordination works now; false: every process polls on its own. */
  healthy(): boolean;
  /** Opens its connections (nothing connects before); coordination works once they are up. */
  start(): void;
  dispose(): Promise<void>;
}

export interface LoopMembership {
  /** Whether this process should poll now (it holds the loop's lease). */
  mayPoll(): boolean | Promise<boolean>;
  /** Shares a snapshot that this process fetched with every process in the loop (this one included). */
  publish(snapshot: TaskSnapshot): void;
  /** The last snapshot any process shared for this loop, for a new loop to start from; null if none. */
  initial(): TaskSnapshot | null | Promise<TaskSnapshot | null>;
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
        initial: () => null,
        leave: () => {
          joined = false;
        },
      };
    },
    announce: () => undefined,
    nudge: () => undefined,
    healthy: () => true,
    start: () => undefined,
    dispose: async () => undefined,
  };
}
