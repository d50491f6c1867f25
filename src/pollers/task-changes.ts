import { isTerminal, type TaskSnapshot, type TaskStatus } from '../upstream/task-snapshot.ts';

/** How far along each status is: a task never moves to a lower rank. */
const rank: Record<TaskStatus, number> = { QUEUED: 0, PROCESSING: 1, UNKNOWN: 1, COMPLETED: 2, FAILED: 2, CANCELLED: 2 };

/** A step back: an earlier status, or less progress in the same one, than already delivered. */
export function isBackwards(previous: TaskSnapshot, next: TaskSnapshot): boolean {
  if (isTerminal(previous.status)) return true;
  if (rank[next.status] !== rank[previous.status]) return rank[next.status] < rank[previous.status];
  if (previous.progress === null || previous.status !== next.status) return false;
  return next.progress === null || next.progress < previous.progress;
}

/** Whether anything a watcher sees changed: status, progress, result or error. */
export function differs(previous: TaskSnapshot, next: TaskSnapshot): boolean {
  return (
    previous.status !== next.status ||
    previous.upstreamStatus !== next.upstreamStatus ||
    previous.progress !== next.progress ||
    JSON.stringify(previous.result) !== JSON.stringify(next.result) ||
    JSON.stringify(previous.error) !== JSON.stringify(next.error)
  );
}
