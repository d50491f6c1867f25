import { type EmulatedTask, stateAt } from './task-store.ts';

/**
 * The two documented wire formats of UPSTREAM.md:
 * - `older`: integer progress (0 for failed and cancelled), millisecond times;
 * - `newer`: `"45%"` progress (`""` right after queueing, `"100%"` for
 *   completed and failed), second times, and the failed code sometimes a number.
 */
export type WireFormat = 'older' | 'newer';

/** How long result links live: 3 days (older docs) or 7 days after completion (newer). */
const linkLifetimeMs: Record<WireFormat, number> = { older: 3 * 86_400_000, newer: 7 * 86_400_000 };

/** The flat task object the upstream answers for `task` at time `at`. */
export function toWire(task: EmulatedTask, at: number, format: WireFormat, baseUrl: string): Record<string, unknown> {
  const state = stateAt(task, at);
  const time = (ms: number) => (format === 'older' ? ms : Math.floor(ms / 1000));
  const wire: Record<string, unknown> = {
    task_id: task.id,
    model: task.model,
    action: task.action,
    status: state.status,
    progress: wireProgress(state.status, state.progress, at - task.createdAt, format),
    created_at: time(task.createdAt),
    urls: { get: `${baseUrl}/tasks/${task.id}`, cancel: `${baseUrl}/tasks/${task.id}/cancel` },
  };
  if (state.completedAt === null) return wire;
  wire.completed_at = time(state.completedAt);
  wire.cost = state.status === 'completed' ? costOf(task) : 0;
  if (state.status === 'failed' && task.failure) {
    const numeric = format === 'newer' && task.failure.code === 'upstream_unavailable';
    wire.error = { message: task.failure.message, code: numeric ? 503 : task.failure.code };
  }
  if (state.status === 'completed') {
    const expiresAt = time(state.completedAt + linkLifetimeMs[format]);
    wire.result = {
      [mediaKind(task)]: [{ url: [`${new URL(baseUrl).origin}/files/${task.id}/0.${extension(task)}`], expires_at: expiresAt }],
    };
  }
  return wire;
}

function wireProgress(status: string, progress: number, ageMs: number, format: WireFormat): number | string {
  if (format === 'older') return status === 'failed' || status === 'cancelled' ? 0 : progress;
  if (status === 'queued' && ageMs < 1000) return '';
  if (status === 'failed') return '100%';
  return `${progress}%`;
}

/** The quota a task costs: what `pre_consumed_cost` announces at submission. */
export function costOf(task: EmulatedTask): number {
  return mediaKind(task) === 'videos' ? 5500 : 300;
}

function mediaKind(task: EmulatedTask): 'images' | 'videos' | 'audios' {
  const name = `${task.model} ${task.action}`.toLowerCase();
  if (/veo|video|kling|sora|extend/.test(name)) return 'videos';
  if (/suno|audio|tts|music/.test(name)) return 'audios';
  return 'images';
}

function extension(task: EmulatedTask): string {
  return { images: 'png', videos: 'mp4', audios: 'mp3' }[mediaKind(task)];
}
