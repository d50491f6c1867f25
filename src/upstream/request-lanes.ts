/**
 * `urgent` (default): a caller waits for the answer (a query, a submit, a cancel): first, in arrival
 * order, its wait in the queue bounded. `first`: a poll loop's read for a watcher with no state yet (or
 * one a webhook asked for): next, in arrival order, with no bound (a subscription has no deadline).
 * `poll`: a loop's periodic read, last, the task read longest ago first.
 */
export type RequestPriority = 'urgent' | 'first' | 'poll';

/** What orders a waiting request. */
export interface Laned {
  priority: RequestPriority;
  /** Held long by the upstream (a submit with `waitSeconds`): waits in a lane of its own, counted apart. */
  held: boolean;
  /** When its task was last read, ms (0: never): the stalest poll goes first. */
  lastReadAt: number;
  /** Arrival order, for ties. */
  seq: number;
}

/** The requests of one key waiting to be sent: three lanes of short requests, and one of long-held ones. */
export interface RequestLanes<T extends Laned> {
  readonly size: number;
  /** Short `urgent` requests waiting. */
  readonly urgent: number;
  /** Long-held requests waiting. */
  readonly held: number;
  /** Adds a request to its lane: at the back, or at the front (a request sent back after a 429). */
  add(entry: T, front?: boolean): void;
  /** Removes a waiting request; false when it was not waiting. */
  remove(entry: T): boolean;
  /** The next short request, without taking it: urgent, else first, else the stalest poll. */
  nextShort(): T | undefined;
  /** The next long-held request, without taking it. */
  nextHeld(): T | undefined;
  /** Takes a request returned by `nextShort` or `nextHeld`: the head of its lane. */
  take(entry: T): void;
  /**
   * Moves a waiting poll to the back of the `first` lane (someone now waits for it). False when the
   * request no longer waits (it was sent): whoever wanted it sooner must ask again.
   */
  promote(entry: T): boolean;
  /** Empties every lane, returning what waited. */
  drain(): T[];
}

export function createRequestLanes<T extends Laned>(): RequestLanes<T> {
  let urgent: T[] = [];
  let first: T[] = [];
  /** Sorted by (lastReadAt, seq). */
  let polls: T[] = [];
  let held: T[] = [];
  const laneOf = (entry: T) => (entry.held ? held : entry.priority === 'urgent' ? urgent : entry.priority === 'first' ? first : polls);
  const stale = (a: T, b: T) => a.lastReadAt > b.lastReadAt || (a.lastReadAt === b.lastReadAt && a.seq > b.seq);

  const lanes: RequestLanes<T> = {
    get size() {
      return urgent.length + first.length + polls.length + held.length;
    },
    get urgent() {
      return urgent.length;
    },
    get held() {
      return held.length;
    },
    add(entry, front = false) {
      if (entry.held || entry.priority !== 'poll') {
        if (front) laneOf(entry).unshift(entry);
        else laneOf(entry).push(entry);
        return;
      }
      // Polls arrive mostly in staleness order: search from the end.
      let index = polls.length;
      while (index > 0 && stale(polls[index - 1]!, entry)) index -= 1;
      polls.splice(index, 0, entry);
    },
    remove(entry) {
      const lane = laneOf(entry);
      const index = lane.indexOf(entry);
      if (index < 0) return false;
      lane.splice(index, 1);
      return true;
    },
    nextShort: () => urgent[0] ?? first[0] ?? polls[0],
    nextHeld: () => held[0],
    take(entry) {
      laneOf(entry).shift();
    },
    promote(entry) {
      if (entry.held || entry.priority !== 'poll') return laneOf(entry).includes(entry);
      if (!lanes.remove(entry)) return false;
      entry.priority = 'first';
      first.push(entry);
      return true;
    },
    drain() {
      const waiting = [...urgent, ...first, ...polls, ...held];
      urgent = [];
      first = [];
      polls = [];
      held = [];
      return waiting;
    },
  };
  return lanes;
}
