/**
 * The emulator's tasks and their life cycle, driven by an injected clock: a
 * task is `queued` for `queuedMs`, then `processing` with progress rising for
 * `processingMs`, then `completed` (or `failed`, when its prompt says
 * `[fail]` or `[fail:<code>]`), unless it was cancelled while queued.
 */
export type EmulatedStatus = 'queued' | 'processing' | 'completed' | 'failed' | 'cancelled';

export interface EmulatedTask {
  id: string;
  /** The API key that submitted the task: nobody else may see it. */
  owner: string;
  model: string;
  action: string;
  prompt: string;
  params: Record<string, unknown>;
  callbackUrl: string | null;
  createdAt: number;
  queuedMs: number;
  processingMs: number;
  failure: { code: string; message: string } | null;
  cancelledAt: number | null;
  /** Set by tests to force a state the clock would not give (an unknown status, say). */
  pinned: { status: string; progress: number; at: number } | null;
}

/** A task's state at one instant. */
export interface TaskState {
  status: string;
  /** 0 to 100. */
  progress: number;
  completedAt: number | null;
}

const terminalStatuses = new Set(['completed', 'failed', 'cancelled']);

export function isTerminalStatus(status: string): boolean {
  return terminalStatuses.has(status);
}

/** The state of `task` at time `at` (ms). */
export function stateAt(task: EmulatedTask, at: number): TaskState {
  if (task.pinned) {
    const { status, progress } = task.pinned;
    return { status, progress, completedAt: isTerminalStatus(status) ? task.pinned.at : null };
  }
  if (task.cancelledAt !== null) return { status: 'cancelled', progress: 0, completedAt: task.cancelledAt };
  const startedAt = task.createdAt + task.queuedMs;
  const endsAt = startedAt + task.processingMs;
  if (at < startedAt) return { status: 'queued', progress: 0, completedAt: null };
  if (at < endsAt) {
    const progress = Math.floor(((at - startedAt) / task.processingMs) * 100);
    return { status: 'processing', progress: Math.min(99, Math.max(1, progress)), completedAt: null };
  }
  return { status: task.failure ? 'failed' : 'completed', progress: 100, completedAt: endsAt };
}

/** What `[fail]` or `[fail:<code>]` in a prompt asks the emulator to do. */
export function failureFromPrompt(prompt: string): EmulatedTask['failure'] {
  const match = /\[fail(?::([a-z_]+))?\]/.exec(prompt);
  if (!match) return null;
  const code = match[1] ?? 'task_failed';
  return { code, message: code === 'task_failed' ? 'The model could not generate this task.' : `Generation failed: ${code}.` };
}
