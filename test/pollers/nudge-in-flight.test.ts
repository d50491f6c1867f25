import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createTaskPoller } from '../../src/pollers/task-poller.ts';
import type { TaskEvent } from '../../src/pollers/task-sink.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { createLocalBudget } from '../../src/upstream/key-budget.ts';
import { createRequestScheduler } from '../../src/upstream/request-scheduler.ts';
import { createScheduledClient } from '../../src/upstream/scheduled-client.ts';
import { createTasksClient } from '../../src/upstream/tasks-client.ts';
import { createManualClock, createManualScheduler, eventually } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';
import { json, startStandIn } from '../helpers/stand-in.ts';

const alice = createCredential('sk-alice-nudge');
const state = (id: string, progress: number) => ({
  task_id: id,
  status: 'processing',
  model: 'm',
  action: 'generate',
  created_at: 1_720_000_000,
  progress,
});

describe('a webhook nudge while the loop reads', () => {
  it('reads again after a read that waited in the key queue and was then sent before the nudge', async () => {
    // The stand-in holds every GET until the test answers it.
    const held: Array<{ id: string; response: ServerResponse }> = [];
    const gets = new Map<string, number>();
    const standIn = await startStandIn((request, response) => {
      const id = request.url!.split('/')[3]!;
      gets.set(id, (gets.get(id) ?? 0) + 1);
      held.push({ id, response });
    });
    const answer = (id: string, progress: number) => {
      const index = held.findIndex((entry) => entry.id === id);
      json(held.splice(index, 1)[0]!.response, 200, state(id, progress));
    };
    const client = createTasksClient({ baseUrl: standIn.url, timeoutMs: 5_000 });
    track(() => client.close());
    const requests = createRequestScheduler({ budget: createLocalBudget() });
    track(async () => requests.dispose());
    const clock = createManualClock();
    const poller = createTaskPoller({
      client: createScheduledClient(client, requests),
      now: clock.now,
      scheduler: createManualScheduler(clock),
      random: () => 0.5,
      intervalMs: 1_000,
      maxIntervalMs: 1_000,
    });
    track(async () => poller.dispose());
    const events: TaskEvent[] = [];
    const watch = async (id: string) => {
      for await (const event of poller.subscribe(alice, id)) if (id === 'task-2') events.push(event);
    };
    // A key the upstream has not accepted yet sends one request at a time: task-2's first read waits in the queue.
    void watch('task-1');
    await eventually(() => expect(held).toHaveLength(1));
    void watch('task-2');
    await eventually(() => expect(requests.stats().queued).toBe(1));
    answer('task-1', 1);
    await eventually(() => expect(gets.get('task-2')).toBe(1));
    // task-2's read is on its way; a webhook says task-2 changed: that read may carry the old state.
    expect(poller.nudge(alice, 'task-2')).toBe(true);
    answer('task-2', 1);
    await eventually(() => expect(events).toHaveLength(1));
    // One more read right after, without waiting for the interval (the manual clock never moves here).
    await eventually(() => expect(gets.get('task-2')).toBe(2));
    answer('task-2', 2);
    await eventually(() => expect(events).toHaveLength(2));
  });
});
