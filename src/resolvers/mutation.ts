import { randomUUID } from 'node:crypto';
import { badUserInput, gatewayError } from '../graphql/errors.ts';
import { TaskOwnersUnavailableError } from '../identity/task-owners.ts';
import { userIdempotencyKey } from '../identity/user-tasks.ts';
import { builder } from '../schema/builder.ts';
import { CancelTaskResultRef } from '../schema/cancel-task-result.ts';
import { MAX_WAIT_SECONDS, SubmitTaskInputRef } from '../schema/submit-task-input.ts';
import { SubmitTaskResultRef, submitLimitError } from '../schema/submit-task-result.ts';
import { TaskNotCancellableError, TaskNotFoundError } from '../upstream/errors.ts';
import { validateTaskId } from '../upstream/task-id.ts';
import { isTerminal, type TaskSnapshot, TaskStatus } from '../upstream/task-snapshot.ts';

/** Longest prompt forwarded, in characters. */
export const MAX_PROMPT_LENGTH = 100_000;
/** Body fields the gateway sets itself, so `params` may not. */
const reservedParams = ['model', 'action', 'prompt', 'callback_url', 'task_id'];

builder.mutationType({
  fields: (t) => ({
    submitTask: t.field({
      type: SubmitTaskResultRef,
      description:
        'Submits a task and returns it as the upstream answered (or as it ended, within `waitSeconds`); `SubmitLimitError` when a per-user limit (jwt mode) refused it before anything reached the upstream.',
      args: { input: t.arg({ type: SubmitTaskInputRef, required: true }) },
      resolve: async (_root, { input }, context) => {
        const { model, action, prompt, params, idempotencyKey, waitSeconds } = input;
        const wait = waitSeconds ?? 0;
        if (model.trim() === '' || model.length > 200) throw badUserInput('model must be 1 to 200 characters.');
        if (!Number.isInteger(wait) || wait < 0 || wait > MAX_WAIT_SECONDS) {
          throw badUserInput(`waitSeconds must be from 0 to ${MAX_WAIT_SECONDS}; got ${wait}.`);
        }
        if (prompt && prompt.length > MAX_PROMPT_LENGTH) {
          throw badUserInput(`prompt must be at most ${MAX_PROMPT_LENGTH} characters.`);
        }
        if (idempotencyKey != null && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
          throw badUserInput('idempotencyKey must be 1 to 255 visible ASCII characters with no spaces.');
        }
        const reserved = Object.keys(params ?? {}).filter((key) => reservedParams.includes(key));
        if (reserved.length > 0) throw badUserInput(`params must not set ${reserved.join(', ')}: use the input fields.`);
        const credential = context.credential();
        const { user, userTasks } = context;
        // Jwt mode: the owners' store must take a record and the limits must pass before anything is sent.
        const admission = user && userTasks ? await userTasks.admit(user, credential) : null;
        if (admission?.refusal) return submitLimitError(admission.refusal);
        context.spendUpstream(1);
        const callback = context.webhooks.prepare(credential);
        const startedAt = context.now();
        // A waiting submit may be cut short by a shutdown, and an owner record may fail after the upstream
        // accepted: the key lets the gateway, or the client, ask again for the same task.
        const requestedKey = idempotencyKey ?? (wait > 0 || admission ? `task-gateway-${randomUUID()}` : undefined);
        const submission = {
          model,
          action: action ?? 'generate',
          prompt: prompt ?? undefined,
          params: params ?? undefined,
          idempotencyKey: user && requestedKey ? userIdempotencyKey(user, requestedKey) : requestedKey,
          waitSeconds: wait,
          callbackUrl: callback?.url,
        };
        let task: TaskSnapshot;
        try {
          try {
            task = await context.tasksClient.submitTask(submission, credential, { signal: wait > 0 ? context.stopping : undefined });
          } catch (error) {
            if (!(wait > 0 && context.stopping.aborted)) throw error;
            // Shutting down: stop waiting. With the same idempotency key the upstream answers the task it created, as it is now.
            task = await context.tasksClient.submitTask({ ...submission, waitSeconds: 0 }, credential);
          }
        } catch (error) {
          if (user && userTasks) userTasks.failed(user, admission?.ticket);
          throw error;
        }
        callback?.bind(task.id);
        if (user && userTasks) {
          try {
            await userTasks.accepted(user, admission?.ticket, task);
          } catch (error) {
            if (!(error instanceof TaskOwnersUnavailableError)) throw error;
            const message =
              'The task was submitted but its owner could not be recorded: submit again with the same idempotencyKey to get it.';
            throw gatewayError('SERVICE_UNAVAILABLE', message, { extensions: { idempotencyKey: requestedKey } });
          }
        }
        await context.recentTasks.record(context.historyKey(), {
          taskId: task.id,
          submittedAt: startedAt,
          preConsumedCost: task.preConsumedCost,
        });
        const remainingMs = wait * 1000 - (context.now() - startedAt);
        if (isTerminal(task.status) || remainingMs <= 0 || context.stopping.aborted) return task;
        // The upstream's own wait ended first: wait the rest on the shared poller.
        const ended = await context.poller.waitForEnd(credential, task.id, remainingMs);
        if (ended && user && userTasks) userTasks.observed(user, ended);
        // A GET does not repeat what the submit answer announced.
        return ended ? { ...ended, preConsumedCost: ended.preConsumedCost ?? task.preConsumedCost } : task;
      },
    }),
    cancelTask: t.field({
      type: CancelTaskResultRef,
      description: 'Cancels a queued task. A task that already started answers `TaskNotCancellableError` with its current state.',
      args: { id: t.arg.id({ required: true }) },
      resolve: async (_root, args, context) => {
        const id = validateTaskId(String(args.id));
        const credential = context.credential();
        const { user, userTasks } = context;
        // Another user's task is answered as one that does not exist, before any upstream request.
        if (user && userTasks && !(await userTasks.owned(user, [id]))[0]) {
          return { kind: 'TaskNotFoundError', id, message: new TaskNotFoundError(id).message } as const;
        }
        // The cancel, then one GET for the task's state either way.
        context.spendUpstream(2);
        let outcome: Awaited<ReturnType<typeof context.tasksClient.cancelTask>>;
        try {
          outcome = await context.tasksClient.cancelTask(id, credential);
        } catch (error) {
          if (error instanceof TaskNotFoundError) return { kind: 'TaskNotFoundError', id, message: error.message } as const;
          if (!(error instanceof TaskNotCancellableError)) throw error;
          const task = await context.tasksClient.getTask(id, credential);
          return { kind: 'TaskNotCancellableError', message: error.message, task } as const;
        }
        // The cancel answer is not a full task: read it back for createdAt, cost and the rest.
        const task = await context.tasksClient.getTask(id, credential);
        if (user && userTasks) userTasks.observed(user, { ...task, refundedCost: outcome.refundedQuota ?? task.refundedCost });
        if (task.status !== TaskStatus.CANCELLED) {
          return { kind: 'TaskNotCancellableError', message: new TaskNotCancellableError(id).message, task } as const;
        }
        return { ...task, refundedCost: outcome.refundedQuota ?? task.refundedCost };
      },
    }),
  }),
});
