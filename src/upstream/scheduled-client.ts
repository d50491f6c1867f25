import type { RequestScheduler } from './request-scheduler.ts';
import { validateTaskId } from './task-id.ts';
import type { TasksClient } from './tasks-client.ts';

/**
 * The Task API client with every request of a key going through the key's
 * scheduler: reads (with their priority hints), submits and cancels (always
 * urgent). Invalid ids are refused before they take a place in the queue.
 */
export function createScheduledClient(client: TasksClient, scheduler: RequestScheduler): TasksClient {
  return {
    // Not async: a poll is a read, and each async step costs a promise on that path.
    getTask(id, credential, options = {}) {
      try {
        validateTaskId(id);
      } catch (error) {
        return Promise.reject(error);
      }
      return scheduler.run(credential.hash, (signal) => client.getTask(id, credential, { signal }), options);
    },
    async submitTask(request, credential, options = {}) {
      return scheduler.run(credential.hash, (signal) => client.submitTask(request, credential, { signal }), {
        signal: options.signal,
        priority: 'urgent',
        // The upstream holds a submit that waits for the task's end: counted apart from short requests.
        held: (request.waitSeconds ?? 0) > 0,
      });
    },
    async cancelTask(id, credential, options = {}) {
      validateTaskId(id);
      return scheduler.run(credential.hash, (signal) => client.cancelTask(id, credential, { signal }), {
        signal: options.signal,
        priority: 'urgent',
      });
    },
    probe: () => client.probe(),
    close: () => client.close(),
  };
}
