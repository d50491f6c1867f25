import { isHttpUrl } from '../lib/http-url.ts';
import { UpstreamInvalidError } from './errors.ts';

/**
 * The gateway's one view of a task: every wire variant of UPSTREAM.md is
 * normalised into this shape by `normaliseTask`, and nothing past
 * `src/upstream` ever sees the wire format.
 */
export const TaskStatus = {
  QUEUED: 'QUEUED',
  PROCESSING: 'PROCESSING',
  COMPLETED: 'COMPLETED',
  FAILED: 'FAILED',
  CANCELLED: 'CANCELLED',
  /** A status value this gateway does not know yet; polling goes on. */
  UNKNOWN: 'UNKNOWN',
} as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];

export interface MediaFile {
  urls: string[];
  expiresAt: Date | null;
}

export interface TaskResult {
  images: MediaFile[];
  videos: MediaFile[];
  audios: MediaFile[];
}

export interface TaskFailure {
  code: string;
  message: string;
  retryable: boolean;
}

export interface TaskSnapshot {
  id: string;
  status: TaskStatus;
  /** The status string exactly as the upstream sent it. */
  upstreamStatus: string;
  action: string;
  model: string;
  /** 0 to 100 (0 while queued, whatever the wire says), or null when the upstream gives none. */
  progress: number | null;
  createdAt: Date;
  completedAt: Date | null;
  cost: number | null;
  /** The quota the submit answer announced (`pre_consumed_cost`); null when the upstream gave none. */
  preConsumedCost: number | null;
  /** The quota a cancel answer reported refunded (`refunded_quota`); null when none was reported. */
  refundedCost: number | null;
  result: TaskResult | null;
  error: TaskFailure | null;
  /**
   * When the task should end, from the progress rate the gateway observed
   * (`src/pollers/eta.ts`); null until known. Never sent by the upstream.
   */
  estimatedCompletionAt?: Date | null;
}

/** What a cancel answer says: `{"task_id", "status": "cancelled", "refunded", "refunded_quota"}`. */
export interface CancelOutcome {
  id: string;
  refunded: boolean;
  /** The quota refunded; null when the answer gives no number. */
  refundedQuota: number | null;
}

const terminal: ReadonlySet<TaskStatus> = new Set([TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED]);

/** Whether a task in this status can never change again. */
export function isTerminal(status: TaskStatus): boolean {
  return terminal.has(status);
}

/** Upstream error codes after which the same request may well succeed. */
const retryableCodes = new Set(['upstream_unavailable', 'upstream_rate_limited']);

/**
 * Turns one upstream task object, in any documented variant, into a snapshot.
 * Throws `UpstreamInvalidError` when the body is not a task at all.
 */
export function normaliseTask(body: unknown, onDroppedUrl: (scheme: string) => void = () => undefined): TaskSnapshot {
  if (!isRecord(body)) throw invalid('the task is not a JSON object');
  const id = body.task_id;
  const rawStatus = body.status;
  if (typeof id !== 'string' || id === '') throw invalid('the task has no task_id');
  if (typeof rawStatus !== 'string') throw invalid('the task has no status');
  const status = parseStatus(rawStatus);
  const createdAt = parseTime(body.created_at);
  if (createdAt === null) throw invalid('the task has no valid created_at');
  return {
    id,
    status,
    upstreamStatus: rawStatus,
    action: typeof body.action === 'string' && body.action !== '' ? body.action : 'generate',
    model: typeof body.model === 'string' ? body.model : '',
    progress: progressOf(status, body.progress),
    createdAt,
    completedAt: isTerminal(status) ? parseTime(body.completed_at) : null,
    cost: isTerminal(status) ? quota(body.cost) : null,
    preConsumedCost: quota(body.pre_consumed_cost),
    refundedCost: status === TaskStatus.CANCELLED ? quota(body.refunded_quota) : null,
    result: status === TaskStatus.COMPLETED ? parseResult(body.result, onDroppedUrl) : null,
    error: status === TaskStatus.FAILED ? parseFailure(body.error) : null,
  };
}

/** Normalises a cancel answer; the id asked for stands in when the answer names none. */
export function normaliseCancel(body: unknown, taskId: string): CancelOutcome {
  const answer = isRecord(body) ? body : {};
  return {
    id: typeof answer.task_id === 'string' && answer.task_id !== '' ? answer.task_id : taskId,
    refunded: answer.refunded === true,
    refundedQuota: quota(answer.refunded_quota),
  };
}

/**
 * 100 once completed; 0 while queued, as the seed page documents it, so that the
 * newer format's `""` right after queueing and its `"0%"` a moment later are the same state.
 */
function progressOf(status: TaskStatus, value: unknown): number | null {
  if (status === TaskStatus.COMPLETED) return 100;
  const progress = parseProgress(value);
  return progress === null && status === TaskStatus.QUEUED ? 0 : progress;
}

/** A quota amount: a finite, non-negative number (numeric strings accepted), else null. */
function quota(value: unknown): number | null {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : null;
}

function parseStatus(raw: string): TaskStatus {
  const upper = raw.trim().toUpperCase();
  return upper in TaskStatus && upper !== TaskStatus.UNKNOWN ? (upper as TaskStatus) : TaskStatus.UNKNOWN;
}

/** Integer 0-100 (older), `"45%"` or `""` (newer); anything else is "no progress". */
export function parseProgress(value: unknown): number | null {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(value);
    if (!match) return null;
    n = Number(match[1]);
  } else return null;
  if (!Number.isFinite(n)) return null;
  return Math.min(100, Math.max(0, Math.round(n)));
}

/** Unix time in seconds, or in milliseconds when above 1e12 (UPSTREAM.md's rule). */
export function parseTime(value: unknown): Date | null {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return null;
  return new Date(n > 1e12 ? n : n * 1000);
}

function parseResult(value: unknown, onDroppedUrl: (scheme: string) => void): TaskResult {
  const result = isRecord(value) ? value : {};
  const files = (list: unknown) => parseFiles(list, onDroppedUrl);
  return { images: files(result.images), videos: files(result.videos), audios: files(result.audios) };
}

function parseFiles(value: unknown, onDroppedUrl: (scheme: string) => void): MediaFile[] {
  if (!Array.isArray(value)) return [];
  return value.filter(isRecord).map((file) => {
    // `url` is documented as always an array; a lone string is accepted too.
    const candidates = (Array.isArray(file.url) ? file.url : [file.url]).filter(
      (url): url is string => typeof url === 'string' && url !== '',
    );
    // Only absolute http(s) links leave the gateway: a `javascript:` or `data:` link would end up in some page's `href`.
    const urls = candidates.filter((url) => isHttpUrl(url) || void onDroppedUrl(schemeOf(url)));
    return { urls, expiresAt: parseTime(file.expires_at) };
  });
}

/** The scheme of a link, for logs (never the link itself): `javascript:`, `data:`, or `relative`. */
function schemeOf(url: string): string {
  return /^[a-z][a-z0-9+.-]{0,20}:/i.exec(url)?.[0].toLowerCase() ?? 'relative';
}

function parseFailure(value: unknown): TaskFailure {
  const error = isRecord(value) ? value : {};
  const code =
    typeof error.code === 'string' && error.code !== '' ? error.code : typeof error.code === 'number' ? String(error.code) : 'task_failed';
  const message = typeof error.message === 'string' && error.message !== '' ? error.message : 'The task failed.';
  return { code, message, retryable: retryableCodes.has(code) };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(why: string): UpstreamInvalidError {
  return new UpstreamInvalidError(`The upstream answered with an invalid task: ${why}.`);
}
