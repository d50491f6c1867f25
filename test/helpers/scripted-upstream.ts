import type { ServerResponse } from 'node:http';
import { json, type RecordedRequest, type StandIn, startStandIn } from './stand-in.ts';

/** One answer of the scripted upstream: a task state, or a fault. */
export type Answer =
  | { status: string; progress?: number | string; extra?: Record<string, unknown> }
  | { fault: 500 | 404 | 401 }
  | { fault: 429; retryAfter?: string; resetAt?: number }
  | { fault: 'hang' | 'garbage' | 'html502' | 'reset' | 'wrong-shape' };

export interface ScriptedUpstream extends StandIn {
  /** Replaces what GET answers from now on: the last answer repeats. */
  script(...answers: Answer[]): void;
  /** GET requests received so far. */
  gets(): number;
  /** Requests whose client went away before an answer (aborted in flight). */
  aborted(): number;
  /** Holds every GET's answer (chosen on arrival) until the returned function is called. */
  hold(): () => void;
}

/** A stand-in upstream whose GET answers follow a script, for fault injection. */
export async function startScriptedUpstream(taskId = 'task-scripted'): Promise<ScriptedUpstream> {
  let answers: Answer[] = [{ status: 'queued', progress: 0 }];
  let gets = 0;
  let aborted = 0;
  let held: Promise<void> | null = null;
  const standIn = await startStandIn(async (request: RecordedRequest, response: ServerResponse) => {
    if (request.method === 'POST' && request.url.endsWith('/tasks')) {
      return json(response, 200, {
        task_id: taskId,
        status: 'queued',
        model: 'm',
        action: 'generate',
        progress: 0,
        created_at: 1_720_000_000,
      });
    }
    if (request.method !== 'GET') return json(response, 404, { error: { code: 'not_found' } });
    gets += 1;
    const answer = answers.length > 1 ? answers.shift()! : answers[0]!;
    response.on('close', () => {
      if (!response.writableFinished) aborted += 1;
    });
    if (held) await held;
    if ('status' in answer) {
      return json(response, 200, {
        task_id: taskId,
        status: answer.status,
        model: 'gpt-image-2',
        action: 'generate',
        progress: answer.progress ?? (answer.status === 'completed' ? 100 : 0),
        created_at: 1_720_000_000,
        ...(['completed', 'failed', 'cancelled'].includes(answer.status) ? { completed_at: 1_720_000_100, cost: 1 } : {}),
        ...(answer.status === 'completed'
          ? { result: { images: [{ url: ['https://cdn.example/1.png'], expires_at: 1_720_600_000 }] } }
          : {}),
        ...answer.extra,
      });
    }
    switch (answer.fault) {
      case 500:
        return json(response, 500, { error: { message: 'boom' } });
      case 404:
        return json(response, 404, { error: { message: 'Task not found', code: 'task_not_found' } });
      case 401:
        return json(response, 401, { error: { message: 'Invalid key' } });
      case 429:
        return json(
          response,
          429,
          { error: { message: 'slow down', code: 'quota_window_exceeded', reset_at: answer.resetAt } },
          answer.retryAfter ? { 'retry-after': answer.retryAfter } : {},
        );
      case 'garbage':
        return void response.writeHead(200, { 'content-type': 'application/json' }).end('{"task_id":"task-scr');
      case 'wrong-shape':
        return json(response, 200, { data: null });
      case 'html502':
        return void response.writeHead(502, { 'content-type': 'text/html' }).end('<html>Bad Gateway</html>');
      case 'reset':
        return void response.socket?.destroy();
      case 'hang':
        return;
    }
  });
  return {
    ...standIn,
    script(...next) {
      answers = next;
    },
    gets: () => gets,
    aborted: () => aborted,
    hold() {
      let release!: () => void;
      held = new Promise<void>((resolve) => {
        release = () => {
          held = null;
          resolve();
        };
      });
      return release;
    },
  };
}
